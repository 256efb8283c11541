// The chart writer: SVG structure and a PNG decoded by an independent
// inflate (stored and fixed-Huffman blocks) with CRC and Adler checks.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "huginn/common.h"
#include "huginn/plot.h"

using namespace huginn;
namespace fs = std::filesystem;

namespace {

plot::Chart sample_chart() {
  plot::Chart c;
  c.title = "accuracy vs iterations";
  c.xlabel = "iterations";
  c.ylabel = "accuracy";
  c.log_x = true;
  c.y_min = 0;
  c.y_max = 1;
  c.series.push_back(plot::make_series("difficulty 4", {1, 2, 4, 8, 16}, {0.1, 0.3, 0.8, 0.95, 0.96}));
  c.series.push_back(plot::make_series("difficulty <8> & more", {1, 2, 4, 8, 16}, {0.05, 0.1, 0.4, 0.7, 0.9}));
  plot::Series pts = plot::make_series("", {3, 5}, {0.5, 0.6});
  pts.line = false;
  pts.point_labels = {"a", "b"};
  c.series.push_back(pts);
  return c;
}

uint32_t be32(const std::vector<uint8_t>& b, size_t o) {
  return (uint32_t)b[o] << 24 | (uint32_t)b[o + 1] << 16 | (uint32_t)b[o + 2] << 8 | b[o + 3];
}

uint32_t crc32_ref(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

// A minimal inflate for stored and fixed-Huffman blocks.
struct BitReader {
  const std::vector<uint8_t>& d;
  size_t pos = 0;
  int bit = 0;
  uint32_t get(int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; ++i) {
      if (pos >= d.size()) throw std::runtime_error("inflate: out of data");
      v |= (uint32_t)((d[pos] >> bit) & 1) << i;
      if (++bit == 8) bit = 0, ++pos;
    }
    return v;
  }
  uint32_t code(int n) {  // MSB-first Huffman bits
    uint32_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 1) | get(1);
    return v;
  }
};

std::vector<uint8_t> inflate(const std::vector<uint8_t>& z) {
  if (z.size() < 6 || (z[0] & 0x0F) != 8 || ((z[0] << 8) | z[1]) % 31 != 0) throw std::runtime_error("bad zlib header");
  std::vector<uint8_t> body(z.begin() + 2, z.end());
  BitReader br{body};
  std::vector<uint8_t> out;
  static const int lb[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
                             131, 163, 195, 227, 258};
  static const int le[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
  static const int db[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
                             1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
  static const int de[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
                             13, 13};
  for (bool last = false; !last;) {
    last = br.get(1);
    const uint32_t type = br.get(2);
    if (type == 0) {
      if (br.bit) br.bit = 0, ++br.pos;
      const uint32_t len = body[br.pos] | body[br.pos + 1] << 8;
      br.pos += 4;
      out.insert(out.end(), body.begin() + br.pos, body.begin() + br.pos + len);
      br.pos += len;
    } else if (type == 1) {
      for (;;) {
        uint32_t v = br.code(7), sym;
        if (v <= 23) sym = 256 + v;
        else {
          v = (v << 1) | br.get(1);
          if (v >= 0x30 && v <= 0xBF) sym = v - 0x30;
          else if (v >= 0xC0 && v <= 0xC7) sym = 280 + v - 0xC0;
          else sym = 144 + (((v << 1) | br.get(1)) - 0x190);
        }
        if (sym < 256) out.push_back((uint8_t)sym);
        else if (sym == 256) break;
        else {
          const int li = sym - 257;
          const int len = lb[li] + br.get(le[li]);
          const int di = br.code(5);
          const int dist = db[di] + br.get(de[di]);
          if ((size_t)dist > out.size()) throw std::runtime_error("inflate: distance too far");
          for (int k = 0; k < len; ++k) out.push_back(out[out.size() - dist]);
        }
      }
    } else {
      throw std::runtime_error("inflate: unsupported block type");
    }
  }
  size_t p = br.pos + (br.bit ? 1 : 0);
  uint32_t a = 1, b = 0;
  for (uint8_t v : out) a = (a + v) % 65521, b = (b + a) % 65521;
  const uint32_t adler = (uint32_t)body[p] << 24 | body[p + 1] << 16 | body[p + 2] << 8 | body[p + 3];
  if (adler != ((b << 16) | a)) throw std::runtime_error("inflate: adler32 mismatch");
  return out;
}

}  // namespace

TEST(Plot, SvgHasAxesSeriesLegendAndEscapedText) {
  std::string svg = plot::render_svg(sample_chart());
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find(">accuracy vs iterations</text>"), std::string::npos);
  EXPECT_NE(svg.find(">difficulty 4</text>"), std::string::npos);
  EXPECT_NE(svg.find("difficulty &lt;8&gt; &amp; more"), std::string::npos);
  EXPECT_EQ(svg.find("<8>"), std::string::npos);
  // Two series lines, log-2 tick labels 1..16, point labels.
  size_t polylines = 0;
  for (size_t p = 0; (p = svg.find("clip-path=\"url(#plotarea)\"", p)) != std::string::npos; ++p) ++polylines;
  EXPECT_EQ(polylines, 2u);
  for (const char* t : {">1</text>", ">2</text>", ">4</text>", ">8</text>", ">16</text>", ">a</text>", ">b</text>"})
    EXPECT_NE(svg.find(t), std::string::npos) << t;
  // Balanced elements.
  size_t open = 0, close = 0;
  for (size_t p = 0; (p = svg.find("<text", p)) != std::string::npos; ++p) ++open;
  for (size_t p = 0; (p = svg.find("</text>", p)) != std::string::npos; ++p) ++close;
  EXPECT_EQ(open, close);
}

TEST(Plot, PngIsValidAndShowsTheSeries) {
  plot::Chart c = sample_chart();
  auto png = plot::render_png(c);
  const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  ASSERT_GT(png.size(), 8u);
  ASSERT_TRUE(std::equal(sig, sig + 8, png.begin()));
  size_t o = 8;
  std::vector<uint8_t> idat;
  uint32_t w = 0, h = 0;
  bool iend = false;
  while (o < png.size()) {
    const uint32_t len = be32(png, o);
    const std::string type(png.begin() + o + 4, png.begin() + o + 8);
    ASSERT_LE(o + 12 + len, png.size());
    EXPECT_EQ(be32(png, o + 8 + len), crc32_ref(&png[o + 4], len + 4)) << type;
    if (type == "IHDR") {
      w = be32(png, o + 8);
      h = be32(png, o + 12);
      EXPECT_EQ(png[o + 16], 8);  // bit depth
      EXPECT_EQ(png[o + 17], 2);  // RGB
    } else if (type == "IDAT") {
      idat.insert(idat.end(), png.begin() + o + 8, png.begin() + o + 8 + len);
    } else if (type == "IEND") {
      iend = true;
    }
    o += 12 + len;
  }
  EXPECT_TRUE(iend);
  EXPECT_EQ(w, (uint32_t)c.width);
  EXPECT_EQ(h, (uint32_t)c.height);
  auto raw = inflate(idat);
  ASSERT_EQ(raw.size(), (size_t)(w * 3 + 1) * h);
  // Mostly white, with pixels of the first two palette colours present.
  auto has_colour = [&](const std::string& hex) {
    const int r = std::stoi(hex.substr(1, 2), nullptr, 16), g = std::stoi(hex.substr(3, 2), nullptr, 16),
              b = std::stoi(hex.substr(5, 2), nullptr, 16);
    for (uint32_t y = 0; y < h; ++y)
      for (uint32_t x = 0; x < w; ++x) {
        const uint8_t* p = &raw[y * (w * 3 + 1) + 1 + x * 3];
        if (p[0] == r && p[1] == g && p[2] == b) return true;
      }
    return false;
  };
  EXPECT_TRUE(has_colour(plot::palette()[0]));
  EXPECT_TRUE(has_colour(plot::palette()[1]));
  size_t white = 0;
  for (uint32_t y = 0; y < h; ++y) {
    EXPECT_EQ(raw[y * (w * 3 + 1)], 0);  // filter byte
    for (uint32_t x = 0; x < w; ++x) white += raw[y * (w * 3 + 1) + 1 + x * 3] == 255;
  }
  EXPECT_GT(white, (size_t)w * h / 2);
  EXPECT_LT(png.size(), (size_t)w * h);  // compressed well below raw RGB
}

TEST(Plot, WriteChartByExtensionAndRejectsBadInput) {
  const fs::path dir = fs::temp_directory_path() / ("huginn_plot_" + std::to_string(getpid()));
  fs::create_directories(dir);
  plot::Chart c = sample_chart();
  plot::write_chart((dir / "a.svg").string(), c);
  plot::write_chart((dir / "a.png").string(), c);
  EXPECT_GT(fs::file_size(dir / "a.svg"), 500u);
  EXPECT_GT(fs::file_size(dir / "a.png"), 500u);
  EXPECT_THROW(plot::write_chart((dir / "a.jpg").string(), c), Error);
  plot::Chart bad = c;
  bad.series[0].y.pop_back();
  EXPECT_THROW(plot::render_svg(bad), Error);
  // Degenerate data (one point, NaNs, equal aspect) still renders.
  plot::Chart one;
  one.equal_aspect = true;
  one.series.push_back(plot::make_series("p", {1, NAN}, {2, 3}));
  EXPECT_NO_THROW(plot::render_svg(one));
  EXPECT_NO_THROW(plot::render_png(one));
  fs::remove_all(dir);
}
