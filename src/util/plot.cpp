// Line/scatter charts: one layout pass builds a list of drawing primitives,
// which is then written as SVG or rasterised into a PNG.
#include "huginn/plot.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "huginn/atomic_file.h"
#include "huginn/common.h"

namespace huginn::plot {

const std::vector<std::string>& palette() {
  static const std::vector<std::string> p = {"#2b6cb0", "#dd6b20", "#2f855a", "#c53030", "#6b46c1",
                                             "#975a16", "#d53f8c", "#4a5568", "#b7791f", "#00a3c4"};
  return p;
}

Series make_series(std::string label, std::vector<double> x, std::vector<double> y) {
  Series s;
  s.label = std::move(label);
  s.x = std::move(x);
  s.y = std::move(y);
  return s;
}

namespace {

// ---------------------------------------------------------------------------
// Primitives in pixel coordinates (y down).
struct Prim {
  enum Kind { Lines, Circle, Text, Rect } kind = Lines;
  std::vector<std::array<double, 2>> pts;  // Lines: a polyline; Rect: two corners
  std::string color = "#000000";
  double width = 1, r = 0;
  bool dashed = false, clip = false, fill = true;
  std::string text;
  double size = 12;
  int anchor = 0;  // 0 start, 1 middle, 2 end (horizontal); text baseline at y
  bool vertical = false;
};

struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  std::vector<double> ticks;
  double t(double v) const {  // 0..1 along the axis
    if (log) return (std::log(v) - std::log(lo)) / (std::log(hi) - std::log(lo));
    return (v - lo) / (hi - lo);
  }
};

std::string fmt_num(double v) {
  if (std::fabs(v) < 1e-12) return "0";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::vector<double> nice_linear_ticks(double lo, double hi) {
  const double raw = (hi - lo) / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    t.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  return t;
}

Axis make_axis(std::vector<double> vals, bool log, double fixed_lo, double fixed_hi) {
  Axis a;
  a.log = log;
  double lo = INFINITY, hi = -INFINITY;
  for (double v : vals) {
    if (!std::isfinite(v) || (log && v <= 0)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (!std::isfinite(lo)) lo = log ? 1 : 0, hi = log ? 10 : 1;
  if (log) {
    if (hi <= lo) lo /= 2, hi *= 2;
    const double pad = std::pow(hi / lo, 0.04);
    lo /= pad, hi *= pad;
  } else {
    if (hi <= lo) {
      const double w = std::fabs(lo) > 0 ? std::fabs(lo) * 0.5 : 0.5;
      lo -= w, hi += w;
    }
    const double pad = (hi - lo) * 0.05;
    lo -= pad, hi += pad;
  }
  if (std::isfinite(fixed_lo) && (!log || fixed_lo > 0)) lo = fixed_lo;
  if (std::isfinite(fixed_hi) && (!log || fixed_hi > 0)) hi = fixed_hi;
  if (hi <= lo) hi = lo + (log ? lo : 1);
  a.lo = lo, a.hi = hi;
  if (log) {
    const double base = hi / lo <= 4096 ? 2 : 10;
    for (double p = std::pow(base, std::ceil(std::log(lo) / std::log(base) - 1e-9)); p <= hi * (1 + 1e-9); p *= base)
      a.ticks.push_back(p);
    if (a.ticks.size() < 2) a.ticks = nice_linear_ticks(lo, hi);
    // Thin out to at most ~10 labels.
    while (a.ticks.size() > 10) {
      std::vector<double> t;
      for (size_t i = 0; i < a.ticks.size(); i += 2) t.push_back(a.ticks[i]);
      a.ticks = t;
    }
  } else {
    a.ticks = nice_linear_ticks(lo, hi);
  }
  return a;
}

constexpr double kCharW = 7.0;  // approximate width of a 12px character

std::vector<Prim> layout(const Chart& c) {
  if (c.width < 120 || c.height < 100) fail("plot: the chart is too small (", c.width, "x", c.height, ")");
  for (auto& s : c.series)
    if (s.x.size() != s.y.size()) fail("plot: series '", s.label, "' has ", s.x.size(), " x and ", s.y.size(), " y");
  const double W = c.width, H = c.height;
  std::vector<double> xs, ys;
  for (auto& s : c.series) {
    xs.insert(xs.end(), s.x.begin(), s.x.end());
    ys.insert(ys.end(), s.y.begin(), s.y.end());
  }
  Axis ax = make_axis(xs, c.log_x, c.x_min, c.x_max);
  Axis ay = make_axis(ys, c.log_y, c.y_min, c.y_max);

  size_t legend_chars = 0;
  int legend_n = 0;
  for (auto& s : c.series)
    if (!s.label.empty()) legend_chars = std::max(legend_chars, s.label.size()), ++legend_n;
  const bool legend = c.legend && legend_n > 0;
  const double right = 20 + (legend ? std::min(220.0, 36 + kCharW * legend_chars) : 0);
  const double left = 74, top = c.title.empty() ? 16 : 40, bottom = 56;
  double x0 = left, x1 = W - right, y0 = top, y1 = H - bottom;
  if (x1 - x0 < 40 || y1 - y0 < 40) fail("plot: the chart is too small for its labels");

  if (c.equal_aspect && !c.log_x && !c.log_y) {
    // Same data units per pixel on both axes: widen the tighter axis.
    const double ux = (ax.hi - ax.lo) / (x1 - x0), uy = (ay.hi - ay.lo) / (y1 - y0);
    if (ux > uy) {
      const double mid = (ay.lo + ay.hi) / 2, half = ux * (y1 - y0) / 2;
      ay.lo = mid - half, ay.hi = mid + half;
      ay.ticks = nice_linear_ticks(ay.lo, ay.hi);
    } else {
      const double mid = (ax.lo + ax.hi) / 2, half = uy * (x1 - x0) / 2;
      ax.lo = mid - half, ax.hi = mid + half;
      ax.ticks = nice_linear_ticks(ax.lo, ax.hi);
    }
  }
  auto px = [&](double v) { return x0 + ax.t(v) * (x1 - x0); };
  auto py = [&](double v) { return y1 - ay.t(v) * (y1 - y0); };
  auto valid = [&](double x, double y) {
    return std::isfinite(x) && std::isfinite(y) && (!c.log_x || x > 0) && (!c.log_y || y > 0);
  };

  std::vector<Prim> out;
  auto line = [&](double a, double b, double cc, double d, const std::string& color, double w) {
    Prim p;
    p.kind = Prim::Lines;
    p.pts = {{a, b}, {cc, d}};
    p.color = color;
    p.width = w;
    out.push_back(p);
  };
  auto text = [&](double x, double y, const std::string& s, double size, int anchor, const std::string& color,
                  bool vertical = false) {
    Prim p;
    p.kind = Prim::Text;
    p.pts = {{x, y}};
    p.text = s;
    p.size = size;
    p.anchor = anchor;
    p.color = color;
    p.vertical = vertical;
    out.push_back(p);
  };
  {
    Prim bg;
    bg.kind = Prim::Rect;
    bg.pts = {{0, 0}, {W, H}};
    bg.color = "#ffffff";
    out.push_back(bg);
  }
  // Grid and ticks.
  for (double t : ax.ticks) {
    const double x = px(t);
    if (x < x0 - 0.5 || x > x1 + 0.5) continue;
    line(x, y0, x, y1, "#e2e8f0", 1);
    line(x, y1, x, y1 + 5, "#4a5568", 1);
    text(x, y1 + 19, fmt_num(t), 12, 1, "#2d3748");
  }
  for (double t : ay.ticks) {
    const double y = py(t);
    if (y < y0 - 0.5 || y > y1 + 0.5) continue;
    line(x0, y, x1, y, "#e2e8f0", 1);
    line(x0 - 5, y, x0, y, "#4a5568", 1);
    text(x0 - 8, y + 4, fmt_num(t), 12, 2, "#2d3748");
  }
  {
    Prim frame;
    frame.kind = Prim::Rect;
    frame.pts = {{x0, y0}, {x1, y1}};
    frame.color = "#4a5568";
    frame.fill = false;
    out.push_back(frame);
  }
  if (!c.title.empty()) text(W / 2, 24, c.title, 14, 1, "#1a202c");
  if (!c.xlabel.empty()) text((x0 + x1) / 2, H - 14, c.xlabel, 12, 1, "#1a202c");
  if (!c.ylabel.empty()) text(18, (y0 + y1) / 2, c.ylabel, 12, 1, "#1a202c", true);

  // Series.
  const auto& pal = palette();
  int ci = 0, li = 0;
  for (auto& s : c.series) {
    const std::string color = s.color.empty() ? pal[ci++ % pal.size()] : s.color;
    if (s.line) {
      Prim p;
      p.kind = Prim::Lines;
      p.color = color;
      p.width = s.line_width;
      p.dashed = s.dashed;
      p.clip = true;
      auto flush = [&] {
        if (p.pts.size() >= 2) out.push_back(p);
        p.pts.clear();
      };
      for (size_t i = 0; i < s.x.size(); ++i) {
        if (!valid(s.x[i], s.y[i])) {
          flush();
          continue;
        }
        p.pts.push_back({px(s.x[i]), py(s.y[i])});
      }
      flush();
    }
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!valid(s.x[i], s.y[i])) continue;
      const double x = px(s.x[i]), y = py(s.y[i]);
      if (x < x0 - 1 || x > x1 + 1 || y < y0 - 1 || y > y1 + 1) continue;
      if (s.markers) {
        Prim m;
        m.kind = Prim::Circle;
        m.pts = {{x, y}};
        m.r = std::max(2.5, s.line_width * 1.6);
        m.color = color;
        out.push_back(m);
      }
      if (i < s.point_labels.size() && !s.point_labels[i].empty()) text(x + 6, y - 6, s.point_labels[i], 12, 0, color);
    }
    if (legend && !s.label.empty()) {
      const double ly = y0 + 14 + 20 * li++, lx = x1 + 14;
      Prim p;
      p.kind = Prim::Lines;
      p.pts = {{lx, ly - 4}, {lx + 22, ly - 4}};
      p.color = color;
      p.width = s.line ? s.line_width : 0;
      p.dashed = s.dashed;
      if (s.line) out.push_back(p);
      if (s.markers) {
        Prim m;
        m.kind = Prim::Circle;
        m.pts = {{lx + 11, ly - 4}};
        m.r = 3;
        m.color = color;
        out.push_back(m);
      }
      text(lx + 28, ly, s.label, 12, 0, "#1a202c");
    }
  }
  // Clip rectangle for series lines, stored in a trailing marker primitive.
  Prim clip;
  clip.kind = Prim::Rect;
  clip.pts = {{x0, y0}, {x1, y1}};
  clip.clip = true;
  clip.fill = false;
  clip.color = "none";
  out.push_back(clip);
  return out;
}

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    switch (ch) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default:
        if ((unsigned char)ch < 0x20 && ch != '\t') o += ' ';
        else o += ch;
    }
  }
  return o;
}

std::string f2(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

// ---------------------------------------------------------------------------
// PNG: a 5x7 bitmap font (ASCII 32..126, row bits 4..0 left to right).
const uint8_t kFont[95][7] = {
    {0, 0, 0, 0, 0, 0, 0},                          // ' '
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04},     // !
    {0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00},     // "
    {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A},     // #
    {0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04},     // $
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03},     // %
    {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D},     // &
    {0x04, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00},     // '
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02},     // (
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08},     // )
    {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00},     // *
    {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00},     // +
    {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08},     // ,
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00},     // -
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C},     // .
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00},     // /
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E},     // 0
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},     // 1
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F},     // 2
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},     // 3
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02},     // 4
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},     // 5
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E},     // 6
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},     // 7
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E},     // 8
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},     // 9
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00},     // :
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08},     // ;
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02},     // <
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00},     // =
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08},     // >
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04},     // ?
    {0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E},     // @
    {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11},     // A
    {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E},     // B
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E},     // C
    {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C},     // D
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F},     // E
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10},     // F
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F},     // G
    {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},     // H
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E},     // I
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},     // J
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11},     // K
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F},     // L
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11},     // M
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},     // N
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},     // O
    {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10},     // P
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D},     // Q
    {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11},     // R
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E},     // S
    {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},     // T
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},     // U
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04},     // V
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A},     // W
    {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11},     // X
    {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04},     // Y
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F},     // Z
    {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E},     // [
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00},     // backslash
    {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E},     // ]
    {0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00},     // ^
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F},     // _
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00},     // `
    {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F},     // a
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E},     // b
    {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E},     // c
    {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F},     // d
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E},     // e
    {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08},     // f
    {0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E},     // g
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11},     // h
    {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E},     // i
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C},     // j
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12},     // k
    {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E},     // l
    {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11},     // m
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11},     // n
    {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E},     // o
    {0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10},     // p
    {0x00, 0x00, 0x0D, 0x13, 0x0F, 0x01, 0x01},     // q
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10},     // r
    {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E},     // s
    {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06},     // t
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D},     // u
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04},     // v
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A},     // w
    {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11},     // x
    {0x00, 0x00, 0x11, 0x11, 0x0F, 0x01, 0x0E},     // y
    {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F},     // z
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02},     // {
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},     // |
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08},     // }
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00},     // ~
};

struct Canvas {
  int W, H;
  std::vector<uint8_t> rgb;
  double cx0 = 0, cy0 = 0, cx1 = 1e9, cy1 = 1e9;  // clip
  Canvas(int w, int h) : W(w), H(h), rgb((size_t)w * h * 3, 255) {}
  void blend(int x, int y, const uint8_t* col, double a) {
    if (x < 0 || y < 0 || x >= W || y >= H || a <= 0) return;
    if (x < cx0 - 0.5 || x > cx1 + 0.5 || y < cy0 - 0.5 || y > cy1 + 0.5) return;
    a = std::min(a, 1.0);
    uint8_t* p = &rgb[((size_t)y * W + x) * 3];
    for (int i = 0; i < 3; ++i) p[i] = (uint8_t)std::lround(p[i] * (1 - a) + col[i] * a);
  }
};

bool parse_color(const std::string& s, uint8_t* out) {
  if (s.size() != 7 || s[0] != '#') return false;
  for (int i = 0; i < 3; ++i) out[i] = (uint8_t)std::stoi(s.substr(1 + 2 * i, 2), nullptr, 16);
  return true;
}

double seg_dist(double px, double py, double ax, double ay, double bx, double by, double* tpar) {
  const double dx = bx - ax, dy = by - ay, L2 = dx * dx + dy * dy;
  double t = L2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / L2 : 0;
  t = std::clamp(t, 0.0, 1.0);
  *tpar = t;
  const double qx = ax + t * dx - px, qy = ay + t * dy - py;
  return std::sqrt(qx * qx + qy * qy);
}

void draw_polyline(Canvas& cv, const Prim& p, const uint8_t* col) {
  // Coverage = max over segments, so joints are not blended twice.
  double bx0 = 1e18, by0 = 1e18, bx1 = -1e18, by1 = -1e18;
  for (auto& q : p.pts) bx0 = std::min(bx0, q[0]), by0 = std::min(by0, q[1]), bx1 = std::max(bx1, q[0]),
                       by1 = std::max(by1, q[1]);
  const double hw = std::max(0.5, p.width / 2);
  const int ix0 = std::max(0, (int)std::floor(bx0 - hw - 1)), iy0 = std::max(0, (int)std::floor(by0 - hw - 1));
  const int ix1 = std::min(cv.W - 1, (int)std::ceil(bx1 + hw + 1)), iy1 = std::min(cv.H - 1, (int)std::ceil(by1 + hw + 1));
  if (ix1 < ix0 || iy1 < iy0) return;
  std::vector<double> seg_start(p.pts.size(), 0);
  for (size_t i = 1; i < p.pts.size(); ++i)
    seg_start[i] = seg_start[i - 1] + std::hypot(p.pts[i][0] - p.pts[i - 1][0], p.pts[i][1] - p.pts[i - 1][1]);
  // Coverage = max over segments (so joints are not blended twice), each
  // segment visiting only its own bounding box.
  const int bw = ix1 - ix0 + 1, bh = iy1 - iy0 + 1;
  std::vector<float> cov((size_t)bw * bh, 0.f);
  for (size_t i = 1; i < p.pts.size(); ++i) {
    const auto &a = p.pts[i - 1], &b = p.pts[i];
    const int sx0 = std::max(ix0, (int)std::floor(std::min(a[0], b[0]) - hw - 1));
    const int sx1 = std::min(ix1, (int)std::ceil(std::max(a[0], b[0]) + hw + 1));
    const int sy0 = std::max(iy0, (int)std::floor(std::min(a[1], b[1]) - hw - 1));
    const int sy1 = std::min(iy1, (int)std::ceil(std::max(a[1], b[1]) + hw + 1));
    for (int y = sy0; y <= sy1; ++y)
      for (int x = sx0; x <= sx1; ++x) {
        double t;
        const double d = seg_dist(x, y, a[0], a[1], b[0], b[1], &t);
        double c = std::clamp(hw + 0.5 - d, 0.0, 1.0);
        if (c > 0 && p.dashed) {
          const double along = seg_start[i - 1] + t * (seg_start[i] - seg_start[i - 1]);
          if (std::fmod(along, 10.0) > 6.0) c = 0;
        }
        float& dst = cov[(size_t)(y - iy0) * bw + (x - ix0)];
        dst = std::max(dst, (float)c);
      }
  }
  for (int y = iy0; y <= iy1; ++y)
    for (int x = ix0; x <= ix1; ++x) cv.blend(x, y, col, cov[(size_t)(y - iy0) * bw + (x - ix0)]);
}

void draw_text(Canvas& cv, const Prim& p, const uint8_t* col) {
  const int scale = p.size >= 13 ? 2 : 1;
  const int gw = 6 * scale, gh = 7 * scale;  // advance and height
  const double len = (double)p.text.size() * gw - scale;
  double start = p.anchor == 1 ? -len / 2 : p.anchor == 2 ? -len : 0;
  const double x = p.pts[0][0], y = p.pts[0][1];
  for (size_t k = 0; k < p.text.size(); ++k) {
    unsigned char ch = (unsigned char)p.text[k];
    if (ch < 32 || ch > 126) ch = '?';
    const uint8_t* g = kFont[ch - 32];
    for (int r = 0; r < 7; ++r)
      for (int b = 0; b < 5; ++b) {
        if (!(g[r] >> (4 - b) & 1)) continue;
        for (int sy = 0; sy < scale; ++sy)
          for (int sx = 0; sx < scale; ++sx) {
            const double u = start + k * gw + b * scale + sx;  // along the text
            const double v = -gh + r * scale + sy + 1;          // above the baseline
            if (p.vertical) cv.blend((int)std::lround(x + v), (int)std::lround(y - u), col, 1);
            else cv.blend((int)std::lround(x + u), (int)std::lround(y + v), col, 1);
          }
      }
  }
}

void draw_circle(Canvas& cv, const Prim& p, const uint8_t* col) {
  const double cx = p.pts[0][0], cy = p.pts[0][1], r = p.r;
  for (int y = (int)std::floor(cy - r - 1); y <= (int)std::ceil(cy + r + 1); ++y)
    for (int x = (int)std::floor(cx - r - 1); x <= (int)std::ceil(cx + r + 1); ++x) {
      const double d = std::hypot(x - cx, y - cy);
      cv.blend(x, y, col, std::clamp(r + 0.5 - d, 0.0, 1.0));
    }
}

// --- PNG encoding: zlib stream of one fixed-Huffman deflate block ----------
uint32_t crc32(const uint8_t* data, size_t n, uint32_t crc = 0) {
  static uint32_t table[256];
  static bool init = false;
  if (!init) {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    init = true;
  }
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

struct BitWriter {
  std::vector<uint8_t> out;
  uint32_t acc = 0;
  int nbits = 0;
  void bits(uint32_t v, int n) {  // LSB first
    for (int i = 0; i < n; ++i) {
      acc |= ((v >> i) & 1u) << nbits;
      if (++nbits == 8) out.push_back((uint8_t)acc), acc = 0, nbits = 0;
    }
  }
  void huff(uint32_t code, int n) {  // Huffman codes go MSB first
    for (int i = n - 1; i >= 0; --i) bits((code >> i) & 1u, 1);
  }
  void flush() {
    if (nbits) out.push_back((uint8_t)acc), acc = 0, nbits = 0;
  }
};

void put_litlen(BitWriter& bw, int v) {
  if (v < 144) bw.huff(0x30 + v, 8);
  else if (v < 256) bw.huff(0x190 + (v - 144), 9);
  else if (v < 280) bw.huff(v - 256, 7);
  else bw.huff(0xC0 + (v - 280), 8);
}

const int kLenBase[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
                          131, 163, 195, 227, 258};
const int kLenExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
const int kDistBase[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
                           2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
const int kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

std::vector<uint8_t> zlib_fixed(const std::vector<uint8_t>& data, int row_bytes) {
  BitWriter bw;
  bw.out = {0x78, 0x01};
  bw.bits(1, 1);  // BFINAL
  bw.bits(1, 2);  // BTYPE = 01, fixed Huffman
  // Matches against the previous pixel (distance 3) or the row above.
  const int dists[2] = {3, row_bytes + 1};
  size_t i = 0;
  const size_t n = data.size();
  while (i < n) {
    int best_len = 0, best_dist = 0;
    for (int d : dists) {
      if (d > 32768 || (size_t)d > i) continue;
      int L = 0;
      while (L < 258 && i + L < n && data[i + L] == data[i + L - d]) ++L;
      if (L > best_len) best_len = L, best_dist = d;
    }
    if (best_len >= 3) {
      int li = 28;
      while (kLenBase[li] > best_len) --li;
      put_litlen(bw, 257 + li);
      bw.bits(best_len - kLenBase[li], kLenExtra[li]);
      int di = 29;
      while (kDistBase[di] > best_dist) --di;
      bw.huff(di, 5);
      bw.bits(best_dist - kDistBase[di], kDistExtra[di]);
      i += best_len;
    } else {
      put_litlen(bw, data[i]);
      ++i;
    }
  }
  put_litlen(bw, 256);
  bw.flush();
  uint32_t a = 1, b = 0;
  for (uint8_t v : data) a = (a + v) % 65521, b = (b + a) % 65521;
  const uint32_t adler = (b << 16) | a;
  for (int k = 3; k >= 0; --k) bw.out.push_back((uint8_t)(adler >> (8 * k)));
  return bw.out;
}

void put_chunk(std::vector<uint8_t>& png, const char* type, const std::vector<uint8_t>& body) {
  const uint32_t n = (uint32_t)body.size();
  for (int k = 3; k >= 0; --k) png.push_back((uint8_t)(n >> (8 * k)));
  std::vector<uint8_t> tb(type, type + 4);
  tb.insert(tb.end(), body.begin(), body.end());
  png.insert(png.end(), tb.begin(), tb.end());
  const uint32_t c = crc32(tb.data(), tb.size());
  for (int k = 3; k >= 0; --k) png.push_back((uint8_t)(c >> (8 * k)));
}

}  // namespace

std::string render_svg(const Chart& c) {
  auto prims = layout(c);
  const Prim& clip = prims.back();
  std::string s = str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"",
                      c.width, "\" height=\"", c.height, "\" viewBox=\"0 0 ", c.width, " ", c.height,
                      "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n");
  s += str("<defs><clipPath id=\"plotarea\"><rect x=\"", f2(clip.pts[0][0]), "\" y=\"", f2(clip.pts[0][1]),
           "\" width=\"", f2(clip.pts[1][0] - clip.pts[0][0]), "\" height=\"", f2(clip.pts[1][1] - clip.pts[0][1]),
           "\"/></clipPath></defs>\n");
  for (size_t k = 0; k + 1 < prims.size(); ++k) {
    const Prim& p = prims[k];
    switch (p.kind) {
      case Prim::Rect:
        s += str("<rect x=\"", f2(p.pts[0][0]), "\" y=\"", f2(p.pts[0][1]), "\" width=\"",
                 f2(p.pts[1][0] - p.pts[0][0]), "\" height=\"", f2(p.pts[1][1] - p.pts[0][1]), "\" ",
                 p.fill ? str("fill=\"", p.color, "\"") : str("fill=\"none\" stroke=\"", p.color, "\""), "/>\n");
        break;
      case Prim::Lines: {
        std::string pts;
        for (auto& q : p.pts) pts += str(pts.empty() ? "" : " ", f2(q[0]), ",", f2(q[1]));
        s += str("<polyline points=\"", pts, "\" fill=\"none\" stroke=\"", p.color, "\" stroke-width=\"", f2(p.width),
                 "\" stroke-linejoin=\"round\" stroke-linecap=\"round\"", p.dashed ? " stroke-dasharray=\"6,4\"" : "",
                 p.clip ? " clip-path=\"url(#plotarea)\"" : "", "/>\n");
        break;
      }
      case Prim::Circle:
        s += str("<circle cx=\"", f2(p.pts[0][0]), "\" cy=\"", f2(p.pts[0][1]), "\" r=\"", f2(p.r), "\" fill=\"",
                 p.color, "\"/>\n");
        break;
      case Prim::Text: {
        const char* anchor = p.anchor == 1 ? "middle" : p.anchor == 2 ? "end" : "start";
        s += str("<text x=\"", f2(p.pts[0][0]), "\" y=\"", f2(p.pts[0][1]), "\" font-size=\"", f2(p.size),
                 "\" text-anchor=\"", anchor, "\" fill=\"", p.color, "\"",
                 p.vertical ? str(" transform=\"rotate(-90 ", f2(p.pts[0][0]), " ", f2(p.pts[0][1]), ")\"") : "",
                 ">", xml_escape(p.text), "</text>\n");
        break;
      }
    }
  }
  s += "</svg>\n";
  return s;
}

std::vector<uint8_t> render_png(const Chart& c) {
  auto prims = layout(c);
  const Prim& clip = prims.back();
  Canvas cv(c.width, c.height);
  for (size_t k = 0; k + 1 < prims.size(); ++k) {
    const Prim& p = prims[k];
    uint8_t col[3] = {0, 0, 0};
    if (!parse_color(p.color, col)) continue;
    if (p.clip) cv.cx0 = clip.pts[0][0], cv.cy0 = clip.pts[0][1], cv.cx1 = clip.pts[1][0], cv.cy1 = clip.pts[1][1];
    else cv.cx0 = 0, cv.cy0 = 0, cv.cx1 = 1e9, cv.cy1 = 1e9;
    switch (p.kind) {
      case Prim::Rect:
        if (p.fill) {
          for (int y = std::max(0, (int)p.pts[0][1]); y < std::min(cv.H, (int)std::ceil(p.pts[1][1])); ++y)
            for (int x = std::max(0, (int)p.pts[0][0]); x < std::min(cv.W, (int)std::ceil(p.pts[1][0])); ++x)
              cv.blend(x, y, col, 1);
        } else {
          Prim l;
          l.width = 1;
          const double a = p.pts[0][0], b = p.pts[0][1], cc = p.pts[1][0], d = p.pts[1][1];
          l.pts = {{a, b}, {cc, b}, {cc, d}, {a, d}, {a, b}};
          draw_polyline(cv, l, col);
        }
        break;
      case Prim::Lines: draw_polyline(cv, p, col); break;
      case Prim::Circle: draw_circle(cv, p, col); break;
      case Prim::Text: draw_text(cv, p, col); break;
    }
  }
  std::vector<uint8_t> raw;
  const int row = c.width * 3;
  raw.reserve((size_t)(row + 1) * c.height);
  for (int y = 0; y < c.height; ++y) {
    raw.push_back(0);  // filter: none
    raw.insert(raw.end(), cv.rgb.begin() + (size_t)y * row, cv.rgb.begin() + (size_t)(y + 1) * row);
  }
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<uint8_t> ihdr;
  for (uint32_t v : {(uint32_t)c.width, (uint32_t)c.height})
    for (int k = 3; k >= 0; --k) ihdr.push_back((uint8_t)(v >> (8 * k)));
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8-bit RGB, deflate, no interlace
  put_chunk(png, "IHDR", ihdr);
  put_chunk(png, "IDAT", zlib_fixed(raw, row));
  put_chunk(png, "IEND", {});
  return png;
}

void write_chart(const std::string& path, const Chart& c) {
  const std::string ext = std::filesystem::path(path).extension().string();
  std::string lower;
  for (char ch : ext) lower += (char)std::tolower((unsigned char)ch);
  if (lower == ".svg") {
    write_file_atomic(path, render_svg(c));
  } else if (lower == ".png") {
    auto bytes = render_png(c);
    write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
  } else {
    fail(path, ": plots are written as .svg or .png");
  }
}

}  // namespace huginn::plot
