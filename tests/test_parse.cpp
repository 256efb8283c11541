// Whole-string number parsing shared by every option and spec parser.
#include <gtest/gtest.h>

#include "huginn/common.h"

using namespace huginn;

TEST(Parse, IntegersMustBeTheWholeString) {
  long long v = 0;
  EXPECT_TRUE(parse_int("12", v));
  EXPECT_EQ(v, 12);
  EXPECT_TRUE(parse_int("-7", v));
  EXPECT_EQ(v, -7);
  for (const char* bad : {"", "12x", " 12", "1.5", "x", "99999999999999999999999"}) {
    v = 42;
    EXPECT_FALSE(parse_int(bad, v)) << bad;
    EXPECT_EQ(v, 42) << "untouched on failure: " << bad;
  }
}

TEST(Parse, UnsignedIntegersTakeTheWhole64BitRange) {
  unsigned long long v = 0;
  EXPECT_TRUE(parse_uint("18446744073709551615", v));
  EXPECT_EQ(v, 18446744073709551615ull);
  for (const char* bad : {"", "-1", "+1", " 1", "18446744073709551616", "1x"}) EXPECT_FALSE(parse_uint(bad, v)) << bad;
}

TEST(Parse, DoublesMustBeTheWholeStringAndFinite) {
  double v = 0;
  EXPECT_TRUE(parse_double("5e-4", v));
  EXPECT_DOUBLE_EQ(v, 5e-4);
  EXPECT_TRUE(parse_double("3", v));
  EXPECT_DOUBLE_EQ(v, 3);
  for (const char* bad : {"", "1e-4x", " 1", "nan", "inf", "1e999", "."}) EXPECT_FALSE(parse_double(bad, v)) << bad;
}

TEST(Parse, IntegerListsTakeCommasSpacesAndBrackets) {
  EXPECT_EQ(parse_int_list("1,2 3\n[4, 5]", "id"), (std::vector<long long>{1, 2, 3, 4, 5}));
  EXPECT_TRUE(parse_int_list("", "id").empty());
  try {
    parse_int_list("1,2x,3", "token id");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "invalid token id '2x'");
  }
  EXPECT_EQ(parse_int_list("[1, 2]\r\n[3]", "id"), (std::vector<long long>{1, 2, 3}));
  EXPECT_TRUE(parse_int_list("[ ]", "id").empty());
  EXPECT_EQ(parse_int_list("[1, 2,]", "id"), (std::vector<long long>{1, 2}));
  // A number left out between commas (or before the first) is not a shorter list.
  for (const char* bad : {"1,,2", "1, ,2", ",1", "1,2,,", "[,]", ","}) {
    try {
      parse_int_list(bad, "token id");
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), std::string("a token id is missing between commas in '") + bad + "'");
    }
  }
}
