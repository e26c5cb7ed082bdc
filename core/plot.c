/* plot.c — drawing primitives, a 5x7 bitmap font, heat-map colours, feature
 * map grids and line charts for the visualisation tools (see plot.h). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"

/* ---- font ---------------------------------------------------------------- */

/* Printable ASCII from ' ' to '~', 7 rows of 5 columns each ('#' = ink). */
static const char font[95][7][6] = {
    {".....", ".....", ".....", ".....", ".....", ".....", "....."}, /* ' ' */
    {"..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#.."}, /* ! */
    {".#.#.", ".#.#.", ".....", ".....", ".....", ".....", "....."}, /* " */
    {".#.#.", ".#.#.", "#####", ".#.#.", "#####", ".#.#.", ".#.#."}, /* # */
    {"..#..", ".####", "#.#..", ".###.", "..#.#", "####.", "..#.."}, /* $ */
    {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"}, /* % */
    {".##..", "#..#.", "#.#..", ".#...", "#.#.#", "#..#.", ".##.#"}, /* & */
    {"..#..", "..#..", ".....", ".....", ".....", ".....", "....."}, /* ' */
    {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."}, /* ( */
    {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."}, /* ) */
    {".....", "..#..", "#.#.#", ".###.", "#.#.#", "..#..", "....."}, /* * */
    {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."}, /* + */
    {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."}, /* , */
    {".....", ".....", ".....", "#####", ".....", ".....", "....."}, /* - */
    {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."}, /* . */
    {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."}, /* / */
    {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."}, /* 0 */
    {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."}, /* 1 */
    {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"}, /* 2 */
    {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."}, /* 3 */
    {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."}, /* 4 */
    {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."}, /* 5 */
    {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."}, /* 6 */
    {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."}, /* 7 */
    {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."}, /* 8 */
    {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."}, /* 9 */
    {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."}, /* : */
    {".....", ".##..", ".##..", ".....", ".##..", "..#..", ".#..."}, /* ; */
    {"...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."}, /* < */
    {".....", ".....", "#####", ".....", "#####", ".....", "....."}, /* = */
    {".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."}, /* > */
    {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."}, /* ? */
    {".###.", "#...#", "....#", ".##.#", "#.#.#", "#.#.#", ".###."}, /* @ */
    {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}, /* A */
    {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."}, /* B */
    {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."}, /* C */
    {"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."}, /* D */
    {"#####", "#....", "#....", "####.", "#....", "#....", "#####"}, /* E */
    {"#####", "#....", "#....", "####.", "#....", "#....", "#...."}, /* F */
    {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"}, /* G */
    {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}, /* H */
    {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}, /* I */
    {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."}, /* J */
    {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"}, /* K */
    {"#....", "#....", "#....", "#....", "#....", "#....", "#####"}, /* L */
    {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"}, /* M */
    {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"}, /* N */
    {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}, /* O */
    {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."}, /* P */
    {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"}, /* Q */
    {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"}, /* R */
    {".####", "#....", "#....", ".###.", "....#", "....#", "####."}, /* S */
    {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}, /* T */
    {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}, /* U */
    {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."}, /* V */
    {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."}, /* W */
    {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"}, /* X */
    {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."}, /* Y */
    {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"}, /* Z */
    {".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###."}, /* [ */
    {".....", "#....", ".#...", "..#..", "...#.", "....#", "....."}, /* \ */
    {".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###."}, /* ] */
    {"..#..", ".#.#.", "#...#", ".....", ".....", ".....", "....."}, /* ^ */
    {".....", ".....", ".....", ".....", ".....", ".....", "#####"}, /* _ */
    {".#...", "..#..", ".....", ".....", ".....", ".....", "....."}, /* ` */
    {".....", ".....", ".###.", "....#", ".####", "#...#", ".####"}, /* a */
    {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####."}, /* b */
    {".....", ".....", ".###.", "#....", "#....", "#...#", ".###."}, /* c */
    {"....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####"}, /* d */
    {".....", ".....", ".###.", "#...#", "#####", "#....", ".###."}, /* e */
    {"..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#..."}, /* f */
    {".....", ".####", "#...#", "#...#", ".####", "....#", ".###."}, /* g */
    {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#"}, /* h */
    {"..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."}, /* i */
    {"...#.", ".....", "..##.", "...#.", "...#.", "#..#.", ".##.."}, /* j */
    {"#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#."}, /* k */
    {".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}, /* l */
    {".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#"}, /* m */
    {".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"}, /* n */
    {".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."}, /* o */
    {".....", ".....", "####.", "#...#", "####.", "#....", "#...."}, /* p */
    {".....", ".....", ".##.#", "#..##", ".####", "....#", "....#"}, /* q */
    {".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."}, /* r */
    {".....", ".....", ".###.", "#....", ".###.", "....#", "####."}, /* s */
    {".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."}, /* t */
    {".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"}, /* u */
    {".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."}, /* v */
    {".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."}, /* w */
    {".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"}, /* x */
    {".....", ".....", "#...#", "#...#", ".####", "....#", ".###."}, /* y */
    {".....", ".....", "#####", "...#.", "..#..", ".#...", "#####"}, /* z */
    {"...#.", "..#..", "..#..", ".#...", "..#..", "..#..", "...#."}, /* { */
    {"..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}, /* | */
    {".#...", "..#..", "..#..", "...#.", "..#..", "..#..", ".#..."}, /* } */
    {".....", ".....", ".#...", "#.#.#", "...#.", ".....", "....."}, /* ~ */
};

/* Is pixel (row, col) of character ch inked? Unknown characters are boxes. */
static bool glyph_ink(unsigned char ch, int row, int col)
{
    if (ch < ' ' || ch > '~') return row == 0 || row == CNN_FONT_H - 1 || col == 0 ||
                                     col == CNN_FONT_W - 1;
    return font[ch - ' '][row][col] == '#';
}

/* ---- primitives ---------------------------------------------------------- */

static void put(cnn_image *im, int x, int y, cnn_rgb c)
{
    if (x < 0 || y < 0 || x >= im->w || y >= im->h || im->c != 3) return;
    uint8_t *p = im->data + ((size_t)y * im->w + x) * 3;
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
}

void cnn_plot_fill(cnn_image *im, int x, int y, int w, int h, cnn_rgb c)
{
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + w > im->w ? im->w : x + w, y1 = y + h > im->h ? im->h : y + h;
    for (int j = y0; j < y1; j++)
        for (int i = x0; i < x1; i++) put(im, i, j, c);
}

void cnn_plot_line(cnn_image *im, double x0, double y0, double x1, double y1, cnn_rgb c,
                   int thick)
{
    if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1)) return;
    double dx = x1 - x0, dy = y1 - y0;
    double len = fabs(dx) > fabs(dy) ? fabs(dx) : fabs(dy);
    int steps = len < 1 ? 1 : (int)ceil(len);
    if (steps > 100000) return; /* far outside any image we draw */
    if (thick < 1) thick = 1;
    int off = (thick - 1) / 2;
    for (int s = 0; s <= steps; s++) {
        double t = (double)s / steps;
        int x = (int)lround(x0 + t * dx), y = (int)lround(y0 + t * dy);
        cnn_plot_fill(im, x - off, y - off, thick, thick, c);
    }
}

int cnn_plot_text_width(const char *s, int scale)
{
    size_t n = strlen(s);
    return n ? (int)(n * (CNN_FONT_W + 1) - 1) * scale : 0;
}

int cnn_plot_text(cnn_image *im, int x, int y, const char *s, cnn_rgb c, int scale)
{
    int cx = x;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        for (int r = 0; r < CNN_FONT_H; r++)
            for (int k = 0; k < CNN_FONT_W; k++)
                if (glyph_ink(*p, r, k)) cnn_plot_fill(im, cx + k * scale, y + r * scale,
                                                       scale, scale, c);
        cx += (CNN_FONT_W + 1) * scale;
    }
    return cnn_plot_text_width(s, scale);
}

void cnn_plot_text_up(cnn_image *im, int x, int y, const char *s, cnn_rgb c, int scale)
{
    int cy = y;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        /* Glyph column k goes up from cy; glyph row r goes right from x. */
        for (int r = 0; r < CNN_FONT_H; r++)
            for (int k = 0; k < CNN_FONT_W; k++)
                if (glyph_ink(*p, r, k))
                    cnn_plot_fill(im, x + r * scale, cy - (k + 1) * scale, scale, scale, c);
        cy -= (CNN_FONT_W + 1) * scale;
    }
}

cnn_rgb cnn_plot_colormap(float v)
{
    /* Piecewise-linear "jet": control points at 0, 1/8, 3/8, 5/8, 7/8, 1. */
    static const float stops[6] = {0.f, 0.125f, 0.375f, 0.625f, 0.875f, 1.f};
    static const float rgb[6][3] = {{0, 0, .5f}, {0, 0, 1}, {0, 1, 1},
                                    {1, 1, 0},   {1, 0, 0}, {.5f, 0, 0}};
    if (!(v > 0)) v = 0; /* NaN too */
    if (v > 1) v = 1;
    int i = 0;
    while (i < 4 && v > stops[i + 1]) i++;
    float t = (v - stops[i]) / (stops[i + 1] - stops[i]);
    float c[3];
    for (int k = 0; k < 3; k++) c[k] = rgb[i][k] + t * (rgb[i + 1][k] - rgb[i][k]);
    return (cnn_rgb){(uint8_t)lroundf(c[0] * 255), (uint8_t)lroundf(c[1] * 255),
                     (uint8_t)lroundf(c[2] * 255)};
}

/* ---- grids ----------------------------------------------------------------- */

cnn_grid_opts cnn_grid_default_opts(void)
{
    return (cnn_grid_opts){.zoom = 1, .pad = 1, .norm = CNN_NORM_PER_MAP,
                           .background = {48, 48, 48}};
}

static int grid_cols(int n, const cnn_grid_opts *o)
{
    if (o->cols > 0) return o->cols < n ? o->cols : (n > 0 ? n : 1);
    int c = (int)ceil(sqrt((double)n));
    return c < 1 ? 1 : c;
}

void cnn_plot_grid_size(int n, int h, int w, const cnn_grid_opts *o, int *out_h, int *out_w)
{
    int cols = grid_cols(n, o), rows = (n + cols - 1) / cols;
    int zoom = o->zoom < 1 ? 1 : o->zoom, pad = o->pad < 0 ? 0 : o->pad;
    if (rows < 1) rows = 1;
    *out_w = cols * w * zoom + (cols + 1) * pad;
    *out_h = rows * h * zoom + (rows + 1) * pad;
}

static void min_max(const float *v, size_t n, float *lo, float *hi)
{
    float a = FLT_MAX, b = -FLT_MAX;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) continue;
        a = v[i] < a ? v[i] : a;
        b = v[i] > b ? v[i] : b;
    }
    if (a > b) a = b = 0;
    *lo = a;
    *hi = b;
}

static uint8_t to_byte(float v, float lo, float hi)
{
    if (!isfinite(v) || !(hi > lo)) return 0;
    float t = (v - lo) / (hi - lo);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return (uint8_t)lroundf(t * 255.f);
}

cnn_status cnn_plot_grid(const float *maps, int n, int c, int h, int w, const cnn_grid_opts *o,
                         cnn_image *out)
{
    if (n < 1 || h < 1 || w < 1 || (c != 1 && c != 3))
        return CNN_ERROR(CNN_ERR_ARG, "grid: %d maps of %dx%dx%d cannot be drawn", n, c, h, w);
    int oh, ow;
    cnn_plot_grid_size(n, h, w, o, &oh, &ow);
    cnn_status st = cnn_image_alloc(out, oh, ow, 3);
    if (st) return st;
    cnn_plot_fill(out, 0, 0, ow, oh, o->background);
    int cols = grid_cols(n, o), zoom = o->zoom < 1 ? 1 : o->zoom, pad = o->pad < 0 ? 0 : o->pad;
    size_t tile = (size_t)c * h * w, plane = (size_t)h * w;
    float glo = o->lo, ghi = o->hi;
    if (o->norm == CNN_NORM_GLOBAL) min_max(maps, tile * n, &glo, &ghi);
    for (int i = 0; i < n; i++) {
        const float *m = maps + tile * i;
        float lo = glo, hi = ghi;
        if (o->norm == CNN_NORM_PER_MAP) min_max(m, tile, &lo, &hi);
        int x0 = pad + (i % cols) * (w * zoom + pad), y0 = pad + (i / cols) * (h * zoom + pad);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                cnn_rgb px;
                uint8_t g = to_byte(m[(size_t)y * w + x], lo, hi);
                if (c == 3)
                    px = (cnn_rgb){g, to_byte(m[plane + (size_t)y * w + x], lo, hi),
                                   to_byte(m[2 * plane + (size_t)y * w + x], lo, hi)};
                else if (o->heat)
                    px = cnn_plot_colormap(g / 255.f);
                else
                    px = (cnn_rgb){g, g, g};
                cnn_plot_fill(out, x0 + x * zoom, y0 + y * zoom, zoom, zoom, px);
            }
    }
    return CNN_OK;
}

cnn_status cnn_plot_zoom(const cnn_image *src, int zoom, cnn_image *out)
{
    if (zoom < 1) return CNN_ERROR(CNN_ERR_ARG, "zoom must be at least 1, not %d", zoom);
    cnn_status st = cnn_image_alloc(out, src->h * zoom, src->w * zoom, src->c);
    if (st) return st;
    for (int y = 0; y < out->h; y++)
        for (int x = 0; x < out->w; x++)
            memcpy(out->data + ((size_t)y * out->w + x) * src->c,
                   src->data + ((size_t)(y / zoom) * src->w + x / zoom) * src->c,
                   (size_t)src->c);
    return CNN_OK;
}

cnn_status cnn_plot_overlay(const cnn_image *src, const float *map, float alpha, cnn_image *out)
{
    if (src->c != 1 && src->c != 3)
        return CNN_ERROR(CNN_ERR_ARG, "overlay: %d-channel image", src->c);
    cnn_status st = cnn_image_alloc(out, src->h, src->w, 3);
    if (st) return st;
    size_t n = (size_t)src->h * src->w;
    for (size_t i = 0; i < n; i++) {
        float m = isfinite(map[i]) ? map[i] : 0.f;
        m = m < 0 ? 0 : m > 1 ? 1 : m;
        cnn_rgb h = cnn_plot_colormap(m);
        const uint8_t *s = src->data + i * src->c;
        uint8_t rgb[3] = {s[0], s[src->c == 3 ? 1 : 0], s[src->c == 3 ? 2 : 0]};
        uint8_t hc[3] = {h.r, h.g, h.b};
        float a = alpha * m;
        for (int k = 0; k < 3; k++)
            out->data[i * 3 + k] = (uint8_t)lroundf((1 - a) * rgb[k] + a * hc[k]);
    }
    return CNN_OK;
}

cnn_status cnn_plot_heatmap(const float *map, int h, int w, cnn_image *out)
{
    float lo, hi;
    min_max(map, (size_t)h * w, &lo, &hi);
    if (lo > 0) lo = 0;
    cnn_status st = cnn_image_alloc(out, h, w, 3);
    if (st) return st;
    for (size_t i = 0; i < (size_t)h * w; i++) {
        cnn_rgb c = cnn_plot_colormap(to_byte(map[i], lo, hi) / 255.f);
        out->data[i * 3] = c.r;
        out->data[i * 3 + 1] = c.g;
        out->data[i * 3 + 2] = c.b;
    }
    return CNN_OK;
}

/* ---- charts ---------------------------------------------------------------- */

void cnn_plot_ticks(double lo, double hi, int target, double *step, double *first,
                    double *last)
{
    if (!(hi > lo)) {
        double d = fabs(lo) > 0 ? fabs(lo) * 0.1 : 1;
        lo -= d;
        hi += d;
    }
    if (target < 2) target = 2;
    double raw = (hi - lo) / target, p = pow(10, floor(log10(raw))), f = raw / p;
    double s = f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10;
    *step = s * p;
    *first = floor(lo / *step + 1e-9) * *step;
    *last = ceil(hi / *step - 1e-9) * *step;
}

/* Tick label: as many decimals as the step needs. */
static void tick_label(double v, double step, char *buf, size_t n)
{
    int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (dec > 6) dec = 6;
    if (fabs(v) < step * 1e-6) v = 0;
    if (fabs(v) >= 1e6 || (fabs(v) > 0 && fabs(v) < 1e-4))
        snprintf(buf, n, "%.2g", v);
    else
        snprintf(buf, n, "%.*f", dec, v);
}

typedef struct {
    double lo, hi, step;
    bool used;
} axis;

static void axis_range(const cnn_plot_series *s, int n, int which, axis *a)
{
    double lo = DBL_MAX, hi = -DBL_MAX;
    for (int i = 0; i < n; i++) {
        if (which >= 0 && (int)s[i].right_axis != which) continue;
        for (int k = 0; k < s[i].n; k++) {
            double v = which >= 0 ? s[i].y[k] : s[i].x[k];
            if (!isfinite(v) || (which >= 0 && !isfinite(s[i].x[k]))) continue;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    }
    a->used = lo <= hi;
    if (!a->used) {
        lo = 0;
        hi = 1;
    }
    /* Non-negative data that reaches near zero starts at zero. */
    if (which >= 0 && lo >= 0 && lo < 0.5 * hi) lo = 0;
    double first, last;
    cnn_plot_ticks(lo, hi, 5, &a->step, &first, &last);
    a->lo = first;
    a->hi = last;
}

cnn_status cnn_plot_chart(const cnn_plot_series *s, int n, const cnn_plot_opts *o,
                          cnn_image *out)
{
    int W = o->width > 0 ? o->width : 800, H = o->height > 0 ? o->height : 500;
    if (W < 200 || H < 150 || W > 10000 || H > 10000)
        return CNN_ERROR(CNN_ERR_ARG, "chart size %dx%d: want 200x150 to 10000x10000", W, H);
    axis ax, ay, ay2;
    axis_range(s, n, -1, &ax);
    axis_range(s, n, 0, &ay);
    axis_range(s, n, 1, &ay2);
    if (!ax.used || (!ay.used && !ay2.used))
        return CNN_ERROR(CNN_ERR_ARG, "chart: no points to plot");
    cnn_status st = cnn_image_alloc(out, H, W, 3);
    if (st) return st;
    const cnn_rgb white = {255, 255, 255}, black = {0, 0, 0}, grid = {225, 225, 225},
                  grey = {90, 90, 90};
    cnn_plot_fill(out, 0, 0, W, H, white);
    int sc = 1;
    int left = 70, right = ay2.used ? W - 70 : W - 25, top = o->title ? 34 : 20,
        bottom = H - 48;
    /* Plot-area coordinates. */
#define PX(v) (left + ((v) - ax.lo) / (ax.hi - ax.lo) * (right - left))
#define PY(a, v) (bottom - ((v) - (a).lo) / ((a).hi - (a).lo) * (bottom - top))
    char buf[64];
    const axis *yl = ay.used ? &ay : &ay2;
    for (double v = yl->lo; v <= yl->hi + yl->step * 1e-6; v += yl->step) {
        int y = (int)lround(PY(*yl, v));
        cnn_plot_line(out, left, y, right, y, grid, 1);
        cnn_plot_line(out, left - 5, y, left, y, black, 1);
        tick_label(v, yl->step, buf, sizeof buf);
        cnn_plot_text(out, left - 8 - cnn_plot_text_width(buf, sc), y - 3, buf, black, sc);
    }
    if (ay.used && ay2.used)
        for (double v = ay2.lo; v <= ay2.hi + ay2.step * 1e-6; v += ay2.step) {
            int y = (int)lround(PY(ay2, v));
            cnn_plot_line(out, right, y, right + 5, y, black, 1);
            tick_label(v, ay2.step, buf, sizeof buf);
            cnn_plot_text(out, right + 8, y - 3, buf, black, sc);
        }
    for (double v = ax.lo; v <= ax.hi + ax.step * 1e-6; v += ax.step) {
        int x = (int)lround(PX(v));
        cnn_plot_line(out, x, bottom, x, bottom + 5, black, 1);
        tick_label(v, ax.step, buf, sizeof buf);
        cnn_plot_text(out, x - cnn_plot_text_width(buf, sc) / 2, bottom + 9, buf, black, sc);
    }
    /* Series, clipped to the plot area by skipping points outside it. */
    for (int i = 0; i < n; i++) {
        const axis *a = s[i].right_axis ? &ay2 : &ay;
        double px = NAN, py = NAN;
        for (int k = 0; k < s[i].n; k++) {
            if (!isfinite(s[i].x[k]) || !isfinite(s[i].y[k])) continue;
            double x = PX(s[i].x[k]), y = PY(*a, s[i].y[k]);
            if (isfinite(px)) cnn_plot_line(out, px, py, x, y, s[i].color, 2);
            if (s[i].markers)
                cnn_plot_fill(out, (int)lround(x) - 2, (int)lround(y) - 2, 5, 5, s[i].color);
            px = x;
            py = y;
        }
    }
    /* Frame. */
    cnn_plot_line(out, left, top, right, top, black, 1);
    cnn_plot_line(out, left, bottom, right, bottom, black, 1);
    cnn_plot_line(out, left, top, left, bottom, black, 1);
    cnn_plot_line(out, right, top, right, bottom, black, 1);
    /* Titles and axis labels. */
    if (o->title)
        cnn_plot_text(out, (W - cnn_plot_text_width(o->title, 2)) / 2, 8, o->title, black, 2);
    if (o->xlabel)
        cnn_plot_text(out, (left + right - cnn_plot_text_width(o->xlabel, sc)) / 2, H - 18,
                      o->xlabel, grey, sc);
    int mid = (top + bottom) / 2;
    if (o->ylabel)
        cnn_plot_text_up(out, 8, mid + cnn_plot_text_width(o->ylabel, sc) / 2, o->ylabel, grey,
                         sc);
    if (o->y2label && ay2.used)
        cnn_plot_text_up(out, W - 8 - CNN_FONT_H * sc,
                         mid + cnn_plot_text_width(o->y2label, sc) / 2, o->y2label, grey, sc);
    /* Legend box, top right inside the plot area. */
    int lw = 0, entries = 0;
    for (int i = 0; i < n; i++) {
        if (!s[i].label) continue;
        int tw = cnn_plot_text_width(s[i].label, sc);
        lw = tw > lw ? tw : lw;
        entries++;
    }
    if (entries) {
        int bw = lw + 40, bh = entries * 14 + 8, bx = right - bw - 8, by = top + 8;
        cnn_plot_fill(out, bx, by, bw, bh, white);
        cnn_plot_line(out, bx, by, bx + bw, by, grey, 1);
        cnn_plot_line(out, bx, by + bh, bx + bw, by + bh, grey, 1);
        cnn_plot_line(out, bx, by, bx, by + bh, grey, 1);
        cnn_plot_line(out, bx + bw, by, bx + bw, by + bh, grey, 1);
        int row = 0;
        for (int i = 0; i < n; i++) {
            if (!s[i].label) continue;
            int y = by + 8 + row * 14;
            cnn_plot_line(out, bx + 6, y + 3, bx + 26, y + 3, s[i].color, 2);
            if (s[i].markers) cnn_plot_fill(out, bx + 14, y + 1, 5, 5, s[i].color);
            cnn_plot_text(out, bx + 32, y, s[i].label, black, sc);
            row++;
        }
    }
#undef PX
#undef PY
    return CNN_OK;
}
