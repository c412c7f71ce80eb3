#include "common/intern_table.h"

#include <gtest/gtest.h>

#include <string>
#include <unordered_map>

namespace quanta {
namespace {

TEST(InternTableTest, EqualValuesShareAnIdAndTheEmptyValueIsZero) {
  InternTable<std::string, std::unordered_map<std::string, uint32_t>> names(100);
  EXPECT_EQ(names.Intern(""), 0u);
  uint32_t f = names.Intern("f"), g = names.Intern("g");
  EXPECT_NE(f, 0u);
  EXPECT_NE(f, g);
  EXPECT_EQ(names.Intern("f"), f);  // after another value, not only the last one
  EXPECT_EQ(names.Intern("f"), f);
  EXPECT_EQ(names[f], "f");
  EXPECT_EQ(names[0], "");
  EXPECT_EQ(names.size(), 3u);
}

TEST(InternTableTest, AFullTableNamesNewValuesZeroAndKeepsTheOldOnes) {
  InternTable<std::string> names(3);  // the empty value and two more
  uint32_t a = names.Intern("a"), b = names.Intern("b");
  EXPECT_EQ(names.Intern("c"), 0u);
  EXPECT_EQ(names.size(), 3u);
  EXPECT_EQ(names.Intern("a"), a);
  EXPECT_EQ(names[b], "b");
}

}  // namespace
}  // namespace quanta
