// The C++ wrapper as a program uses it: RAII handles, exceptions carrying
// the status and message. Exits non-zero, saying what failed, if anything does.
#include "idict.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

static int failures = 0;

#define EXPECT(cond, what)                                          \
  do {                                                              \
    if (!(cond)) {                                                  \
      std::fprintf(stderr, "FAILED line %d: %s\n", __LINE__, what); \
      failures++;                                                   \
    }                                                               \
  } while (0)

// `body` throws idict::error with `code`, its message mentioning `words`.
template <class F>
static void throws(F body, idict_status code, const char *words, const char *what) {
  try {
    body();
    EXPECT(false, what);
  } catch (const idict::error &e) {
    EXPECT(e.code() == code, what);
    EXPECT(std::string(e.what()).find(words) != std::string::npos, what);
  }
}

int main() {
  const char *dir = std::getenv("IDICT_RUNS_DIR");
  std::string checkpoint = std::string(dir ? dir : ".") + "/wrapper.ckpt";
  {
    idict::dict d("wrapper");
    d.writable("dt", 0.01, 0.0, 0.25);
    d.set("residual", 0.5);
    d.set("step", 3);
    d.set("phase", "warm-up");
    std::vector<double> u = {1, 2, 3, 4, 5, 6};
    d.set_array("u", u, {2, 3});
    d.set_array("fortran", u, {3, 2}, IDICT_COLUMN_MAJOR);
    d.set_array("column", std::vector<float>{1.f, 2.f});
    EXPECT(d.get_f64("dt") == 0.01, "dt");
    EXPECT(d.get_i64("step") == 3, "step");
    throws([&] { d.get_i64("phase"); }, IDICT_ERR_TYPE, "phase", "a string is no integer");
    throws([&] { d.get_f64("nothing"); }, IDICT_ERR_NOT_FOUND, "nothing", "a missing key");
    throws([&] { d.set_array("u", u, {4, 3}); }, IDICT_ERR_ARGUMENT, "it takes 96",
           "a shape the data does not fill");
    throws([&] { d.trigger("bad", "residual >"); }, IDICT_ERR_ARGUMENT, "column 11",
           "a bad condition");
    d.trigger("diverged", "residual > 1e6", IDICT_TRIGGER_PAUSE | IDICT_TRIGGER_CHECKPOINT);
    throws([&] { d.remove_trigger("nothing"); }, IDICT_ERR_NOT_FOUND, "nothing",
           "no such trigger");
    idict::server s = d.serve();
    EXPECT(s.address().rfind("http://127.0.0.1:", 0) == 0, "address");
    EXPECT(d.notify_update() == 1, "notify");
    EXPECT(d.wait(), "wait goes on");
    EXPECT(d.checkpoint(checkpoint) == 1, "checkpoint");
    d.pause();
    EXPECT(d.wait_for(0.05) == IDICT_STILL_PAUSED, "paused");
    d.terminate();
    EXPECT(!d.wait(), "wait stops");
    EXPECT(d.notify_update_final() == 2, "final");
    throws([&] { d.notify_update(); }, IDICT_ERR_STATE, "finished", "after the final update");
    s.wait_then_close(2.0);
    throws([&] { s.address(); }, IDICT_ERR_HANDLE, "not a live", "a closed server");
    // Moved from: the handle goes with the move, once.
    idict::dict moved = std::move(d);
    EXPECT(moved.get_f64("residual") == 0.5, "moved");
  }
  idict::dict restored = idict::dict::restore(checkpoint);
  EXPECT(restored.get_f64("residual") == 0.5, "restored");
  if (failures == 0) std::printf("ok\n");
  return failures == 0 ? 0 : 1;
}
