// Unit tests for control/kv_store.h: put/get/delete/list, overwrite semantics, namespaces
// kept apart, prefix operations, and the bounds on value size and key count.
#include "control/kv_store.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace quanta {
namespace {

TEST(KvStore, PutGetAndOverwrite) {
  KvStore kv;
  auto added = kv.Put("ns", "k", "v1", false);
  ASSERT_TRUE(added.ok());
  EXPECT_TRUE(added.value());
  ASSERT_NE(kv.Get("ns", "k"), nullptr);
  EXPECT_EQ(*kv.Get("ns", "k"), "v1");

  // Without overwrite an existing key keeps its value; the answer says it was not added.
  auto again = kv.Put("ns", "k", "v2", false);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again.value());
  EXPECT_EQ(*kv.Get("ns", "k"), "v1");
  // With overwrite it is replaced, and still "not added".
  auto over = kv.Put("ns", "k", "v3", true);
  ASSERT_TRUE(over.ok());
  EXPECT_FALSE(over.value());
  EXPECT_EQ(*kv.Get("ns", "k"), "v3");
  EXPECT_EQ(kv.size(), 1u);
}

TEST(KvStore, MissingKeysAndNamespaces) {
  KvStore kv;
  EXPECT_EQ(kv.Get("ns", "k"), nullptr);
  EXPECT_EQ(kv.Delete("ns", "k", false), 0u);
  EXPECT_EQ(kv.Delete("ns", "k", true), 0u);
  EXPECT_TRUE(kv.List("ns", "").empty());
  ASSERT_TRUE(kv.Put("ns", "k", "v", false).ok());
  EXPECT_EQ(kv.Get("ns", "other"), nullptr);
}

TEST(KvStore, NamespacesAreSeparate) {
  KvStore kv;
  ASSERT_TRUE(kv.Put("a", "key", "in a", false).ok());
  ASSERT_TRUE(kv.Put("b", "key", "in b", false).ok());
  ASSERT_TRUE(kv.Put("", "key", "in the default", false).ok());
  EXPECT_EQ(*kv.Get("a", "key"), "in a");
  EXPECT_EQ(*kv.Get("b", "key"), "in b");
  EXPECT_EQ(*kv.Get("", "key"), "in the default");
  EXPECT_EQ(kv.Delete("a", "key", false), 1u);
  EXPECT_EQ(kv.Get("a", "key"), nullptr);
  EXPECT_NE(kv.Get("b", "key"), nullptr) << "deleting in one namespace leaves the others";
  EXPECT_EQ(kv.List("b", "").size(), 1u);
  EXPECT_EQ(kv.size(), 2u);
}

TEST(KvStore, BinaryKeysAndValues) {
  KvStore kv;
  std::string key("a\0b", 3), value("\0\xff\x01", 3);
  ASSERT_TRUE(kv.Put("ns", key, value, false).ok());
  EXPECT_EQ(kv.Get("ns", "a"), nullptr) << "a key is not cut at a NUL byte";
  ASSERT_NE(kv.Get("ns", key), nullptr);
  EXPECT_EQ(*kv.Get("ns", key), value);
  ASSERT_TRUE(kv.Put("ns", "", "empty key", false).ok());
  EXPECT_EQ(*kv.Get("ns", ""), "empty key");
  ASSERT_TRUE(kv.Put("ns", "empty value", "", false).ok());
  EXPECT_EQ(*kv.Get("ns", "empty value"), "");
}

TEST(KvStore, ListAndDeleteByPrefix) {
  KvStore kv;
  for (const char* k : {"job:1", "job:2", "job:10", "jobs", "actor:1", "jo"}) {
    ASSERT_TRUE(kv.Put("ns", k, "x", false).ok());
  }
  ASSERT_TRUE(kv.Put("other", "job:3", "x", false).ok());
  EXPECT_EQ(kv.List("ns", "job:"), (std::vector<std::string>{"job:1", "job:10", "job:2"}));
  EXPECT_EQ(kv.List("ns", "job").size(), 4u);
  EXPECT_EQ(kv.List("ns", "").size(), 6u);
  EXPECT_TRUE(kv.List("ns", "zzz").empty());
  // Delete of a prefix key without by_prefix removes only that exact key.
  EXPECT_EQ(kv.Delete("ns", "job", false), 0u);
  EXPECT_EQ(kv.Delete("ns", "job:", true), 3u);
  EXPECT_EQ(kv.List("ns", ""), (std::vector<std::string>{"actor:1", "jo", "jobs"}));
  EXPECT_EQ(kv.size(), 4u);
  EXPECT_NE(kv.Get("other", "job:3"), nullptr);
  // The empty prefix is every key of the namespace.
  EXPECT_EQ(kv.Delete("ns", "", true), 3u);
  EXPECT_TRUE(kv.List("ns", "").empty());
  EXPECT_EQ(kv.size(), 1u);
}

TEST(KvStore, ValueSizeBound) {
  KvStore kv;
  std::string max(KvStore::kMaxValue, 'v');
  auto ok = kv.Put("ns", "max", max, false);
  ASSERT_TRUE(ok.ok()) << "exactly the limit is allowed";
  std::string over(KvStore::kMaxValue + 1, 'v');
  auto refused = kv.Put("ns", "over", over, false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("1 MiB"), std::string::npos) << refused.status().message();
  EXPECT_EQ(kv.Get("ns", "over"), nullptr);
  // An oversized overwrite of an existing key is refused too and keeps the old value.
  EXPECT_FALSE(kv.Put("ns", "max", over, true).ok());
  EXPECT_EQ(kv.Get("ns", "max")->size(), KvStore::kMaxValue);
  EXPECT_EQ(kv.size(), 1u);
}

TEST(KvStore, KeyCountBoundAcrossNamespaces) {
  KvStore kv;
  for (size_t i = 0; i < KvStore::kMaxKeys; ++i) {
    ASSERT_TRUE(kv.Put(i % 2 ? "odd" : "even", std::to_string(i), "", false).ok()) << i;
  }
  EXPECT_EQ(kv.size(), KvStore::kMaxKeys);
  auto refused = kv.Put("third", "one more", "v", false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(kv.Get("third", "one more"), nullptr);
  // Overwriting an existing key adds nothing, so it is still allowed when full.
  auto over = kv.Put("even", "0", "new", true);
  ASSERT_TRUE(over.ok());
  EXPECT_EQ(*kv.Get("even", "0"), "new");
  // Deleting makes room again.
  EXPECT_EQ(kv.Delete("odd", "1", false), 1u);
  EXPECT_TRUE(kv.Put("third", "one more", "v", false).ok());
  EXPECT_EQ(kv.size(), KvStore::kMaxKeys);
}

}  // namespace

TEST(KvStore, EmptyNamespacesDoNotAccumulate) {
  KvStore kv;
  for (int i = 0; i < 1000; ++i) {
    std::string ns = "ns" + std::to_string(i);
    ASSERT_TRUE(kv.Put(ns, "k", "v", false).ok());
    EXPECT_EQ(kv.Delete(ns, "k", false), 1u);
  }
  EXPECT_EQ(kv.size(), 0u);
  EXPECT_EQ(kv.num_namespaces(), 0u);
  ASSERT_TRUE(kv.Put("a", "p1", "v", false).ok());
  ASSERT_TRUE(kv.Put("a", "p2", "v", false).ok());
  EXPECT_EQ(kv.Delete("a", "p", true), 2u);
  EXPECT_EQ(kv.num_namespaces(), 0u);
}

}  // namespace quanta
