// Package testkit holds the helpers zhifu's tests share: the seed of a
// randomised test, which every such test logs and which ZHIFU_TEST_SEED
// replays; a clock the test moves by hand; and a buffer that collects logs
// written from many goroutines. It is imported by tests only.
package testkit
