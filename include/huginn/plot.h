// Small line/scatter charts written as SVG or PNG, with no dependencies: for
// evaluation curves (accuracy vs iterations), training losses and latent
// trajectories (PCA scatter with labelled points).
//
//   plot::Chart c;
//   c.title = "accuracy vs iterations"; c.xlabel = "iterations"; c.log_x = true;
//   c.series.push_back(plot::make_series("n=8", {1, 2, 4}, {0.1, 0.5, 0.9}));
//   plot::write_chart("acc.svg", c);  // or "acc.png"
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace huginn::plot {

struct Series {
  std::string label;                      // legend entry ("" = not in the legend)
  std::vector<double> x, y;               // same length; non-finite points are skipped
  bool line = true;                       // connect consecutive points
  bool markers = true;                    // a dot at each point
  std::vector<std::string> point_labels;  // optional text beside each point (e.g. iteration numbers)
  std::string color;                      // "#rrggbb"; "" = the next palette colour
  double line_width = 2.0;
  bool dashed = false;
};

struct Chart {
  std::string title, xlabel, ylabel;
  std::vector<Series> series;
  bool log_x = false, log_y = false;  // log axes (non-positive values are skipped)
  // Axis limits; NaN = from the data (with a little padding on linear axes).
  double x_min = NAN, x_max = NAN, y_min = NAN, y_max = NAN;
  int width = 720, height = 480;  // pixels
  bool legend = true;
  bool equal_aspect = false;  // same scale on both axes (trajectories, PCA)
};

// A series with a label and points (lines and markers on).
Series make_series(std::string label, std::vector<double> x, std::vector<double> y);

// The chart as an SVG document.
std::string render_svg(const Chart& c);
// The chart as an RGB PNG file (bytes), drawn by a small rasteriser with a
// built-in bitmap font.
std::vector<uint8_t> render_png(const Chart& c);
// Writes .svg or .png by the path's extension (atomically); throws
// huginn::Error for any other extension.
void write_chart(const std::string& path, const Chart& c);

// The palette colours, in order.
const std::vector<std::string>& palette();

}  // namespace huginn::plot
