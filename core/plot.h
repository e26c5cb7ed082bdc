/* plot.h — drawing into 8-bit RGB images for the visualisation tools: filled
 * rectangles, lines, text in an embedded 5x7 bitmap font, a heat-map colour
 * scale, tiled grids of feature maps, overlays, and line charts with axes,
 * tick labels and a legend (training curves). No external font or plotting
 * libraries; the images are written with cnn_image_write_png. */
#ifndef CNN_PLOT_H
#define CNN_PLOT_H

#include "cnn.h"
#include "image.h"

typedef struct cnn_rgb {
    uint8_t r, g, b;
} cnn_rgb;

/* Glyphs are 5x7 pixels; text advances 6 pixels per character and 8 per
 * line, times `scale`. */
#define CNN_FONT_W 5
#define CNN_FONT_H 7

/* Fills the rectangle [x, x+w) x [y, y+h) of a 3-channel image (clipped). */
void cnn_plot_fill(cnn_image *im, int x, int y, int w, int h, cnn_rgb c);
/* Draws a line `thick` pixels wide from (x0, y0) to (x1, y1) (clipped). */
void cnn_plot_line(cnn_image *im, double x0, double y0, double x1, double y1, cnn_rgb c,
                   int thick);
/* Width in pixels of s drawn at `scale` (characters times 6, minus the last gap). */
int cnn_plot_text_width(const char *s, int scale);
/* Draws s with its top-left corner at (x, y); printable ASCII, anything else
 * as a box. Returns the width drawn. */
int cnn_plot_text(cnn_image *im, int x, int y, const char *s, cnn_rgb c, int scale);
/* Draws s rotated 90 degrees anticlockwise (reading upwards), its bottom-left
 * corner at (x, y). */
void cnn_plot_text_up(cnn_image *im, int x, int y, const char *s, cnn_rgb c, int scale);

/* The heat-map colour of v in [0, 1] (clamped): dark blue, blue, cyan,
 * yellow, red ("jet"). */
cnn_rgb cnn_plot_colormap(float v);

/* How cnn_plot_grid maps values to grey levels. */
typedef enum {
    CNN_NORM_PER_MAP, /* each tile's own min..max to 0..255 */
    CNN_NORM_GLOBAL,  /* the min..max over all tiles */
    CNN_NORM_FIXED    /* lo..hi given in the options */
} cnn_grid_norm;

typedef struct cnn_grid_opts {
    int zoom;           /* each value becomes zoom x zoom pixels (>= 1) */
    int pad;            /* pixels between tiles and around the grid */
    int cols;           /* tiles per row; 0: ceil(sqrt(n)) */
    cnn_grid_norm norm;
    float lo, hi;       /* CNN_NORM_FIXED range */
    bool heat;          /* colour with cnn_plot_colormap instead of grey (c == 1) */
    cnn_rgb background;
} cnn_grid_opts;

/* Defaults: zoom 1, pad 1, automatic columns, per-map normalisation, grey
 * tiles on a dark grey background. */
cnn_grid_opts cnn_grid_default_opts(void);
/* Tiles n maps of (c, h, w) planar floats (c is 1 or 3: grey or RGB tiles)
 * into an RGB image: cols x rows tiles of (h*zoom) x (w*zoom) pixels with
 * `pad` pixels between and around them. A map whose values are all equal is
 * drawn black under per-map normalisation. NaNs are drawn black. */
cnn_status cnn_plot_grid(const float *maps, int n, int c, int h, int w, const cnn_grid_opts *o,
                         cnn_image *out);
/* The size cnn_plot_grid gives, without drawing. */
void cnn_plot_grid_size(int n, int h, int w, const cnn_grid_opts *o, int *out_h, int *out_w);

/* Nearest-neighbour enlargement of src by an integer factor (1, 3 or 4
 * channels kept). */
cnn_status cnn_plot_zoom(const cnn_image *src, int zoom, cnn_image *out);
/* src (1 or 3 channels) as RGB, blended with the heat map of `map` (h x w,
 * src's size, values in [0, 1]): out = (1 - alpha * m) * src + alpha * m *
 * colour(m), so low values leave the image visible. */
cnn_status cnn_plot_overlay(const cnn_image *src, const float *map, float alpha, cnn_image *out);
/* map (h x w) as an RGB heat map of its own 0..max (or min..max when it has
 * negative values) range. */
cnn_status cnn_plot_heatmap(const float *map, int h, int w, cnn_image *out);

/* ---- line charts ------------------------------------------------------- */

typedef struct cnn_plot_series {
    const char *label;    /* legend text */
    const double *x, *y;  /* (n) points; NaN y values are skipped */
    int n;
    cnn_rgb color;
    bool right_axis;      /* plotted against the right-hand axis */
    bool markers;         /* a small square at each point */
} cnn_plot_series;

typedef struct cnn_plot_opts {
    int width, height;    /* pixels; 0: 800 x 500 */
    const char *title;    /* may be NULL */
    const char *xlabel, *ylabel, *y2label; /* may be NULL */
} cnn_plot_opts;

/* Draws a line chart of the series: x axis shared, y axes left (series with
 * right_axis false) and right (true; only drawn when such a series exists),
 * each with "nice" ticks (1, 2 or 5 times a power of ten) and labels,
 * horizontal grid lines, and a legend in the top-right corner. Needs at
 * least one series with a point. */
cnn_status cnn_plot_chart(const cnn_plot_series *s, int n, const cnn_plot_opts *o,
                          cnn_image *out);
/* The tick positions "nice" ticks give for [lo, hi]: step and the first and
 * last multiple of it covering the range (exposed for tests). */
void cnn_plot_ticks(double lo, double hi, int target, double *step, double *first,
                    double *last);

#endif
