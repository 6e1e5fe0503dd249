// idict.hpp: a header-only C++17 wrapper over idict.h. Handles are owned
// (RAII: a dict frees its handle, a server closes when it goes), failures
// throw idict::error with the status and idict_last_error()'s message.
//
//   idict::dict d("heat");
//   d.writable("dt", 1e-5, 0.0, 2.7e-5);
//   idict::server s = d.serve();
//   while (d.wait()) {
//       double dt = d.get_f64("dt");
//       ...
//       d.set("residual", r);
//       d.set_array("u", u, {n, n});
//       d.notify_update();
//   }
//   d.notify_update_final();
//   s.wait_then_close(10.0);
#ifndef IDICT_HPP
#define IDICT_HPP

#include "idict.h"

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace idict {

/// A failed call: its status and idict's message.
class error : public std::runtime_error {
 public:
  error(idict_status code, const char *message)
      : std::runtime_error(message ? message : ""), code_(code) {}
  idict_status code() const noexcept { return code_; }

 private:
  idict_status code_;
};

/// Throws `error` unless `status` is IDICT_OK.
inline void check(idict_status status) {
  if (status != IDICT_OK) throw error(status, idict_last_error());
}

namespace detail {
template <class T> struct dtype_of;
template <> struct dtype_of<double> { static constexpr idict_dtype value = IDICT_F64; };
template <> struct dtype_of<float> { static constexpr idict_dtype value = IDICT_F32; };
template <> struct dtype_of<std::int64_t> { static constexpr idict_dtype value = IDICT_I64; };
template <> struct dtype_of<std::int32_t> { static constexpr idict_dtype value = IDICT_I32; };
template <> struct dtype_of<std::uint8_t> { static constexpr idict_dtype value = IDICT_U8; };
}  // namespace detail

/// A served run; closes the server (and removes the run file) when it goes.
class server {
 public:
  explicit server(idict_server_t handle) noexcept : handle_(handle) {}
  server(server &&other) noexcept : handle_(std::exchange(other.handle_, 0)) {}
  server &operator=(server &&other) noexcept {
    if (this != &other) {
      close_quietly();
      handle_ = std::exchange(other.handle_, 0);
    }
    return *this;
  }
  server(const server &) = delete;
  server &operator=(const server &) = delete;
  ~server() { close_quietly(); }

  /// Where clients connect: http://127.0.0.1:PORT.
  std::string address() const {
    char buf[256];
    check(idict_server_address(handle_, buf, sizeof buf));
    return buf;
  }
  /// Serves until every watcher has the final update (or `timeout_seconds`),
  /// then closes.
  void wait_then_close(double timeout_seconds) {
    check(idict_server_wait_then_close(std::exchange(handle_, 0), timeout_seconds));
  }
  /// Closes at once.
  void close() { check(idict_server_close(std::exchange(handle_, 0))); }
  idict_server_t handle() const noexcept { return handle_; }

 private:
  void close_quietly() noexcept {
    if (handle_ != 0) idict_server_close(std::exchange(handle_, 0));
  }
  idict_server_t handle_;
};

/// A run: the dictionary a computation embeds. Frees its handle when it goes.
class dict {
 public:
  /// A new run named `name`; checks first that idict.h is the library's.
  explicit dict(const std::string &name) {
    check(idict_check_version(IDICT_ABI_VERSION));
    check(idict_new(name.c_str(), &handle_));
  }
  /// A run restored from a checkpoint file.
  static dict restore(const std::string &path) {
    idict_t handle = 0;
    check(idict_restore(path.c_str(), &handle));
    return dict(handle);
  }
  dict(dict &&other) noexcept : handle_(std::exchange(other.handle_, 0)) {}
  dict &operator=(dict &&other) noexcept {
    if (this != &other) {
      if (handle_ != 0) idict_free(handle_);
      handle_ = std::exchange(other.handle_, 0);
    }
    return *this;
  }
  dict(const dict &) = delete;
  dict &operator=(const dict &) = delete;
  ~dict() {
    if (handle_ != 0) idict_free(handle_);
  }

  idict_t handle() const noexcept { return handle_; }

  // The working map: nothing a client sees changes until notify_update().
  void set(const std::string &key, double value) {
    check(idict_set_f64(handle_, key.c_str(), value));
  }
  void set(const std::string &key, std::int64_t value) {
    check(idict_set_i64(handle_, key.c_str(), value));
  }
  void set(const std::string &key, int value) { set(key, static_cast<std::int64_t>(value)); }
  void set(const std::string &key, bool value) {
    check(idict_set_bool(handle_, key.c_str(), value ? 1 : 0));
  }
  void set(const std::string &key, const std::string &value) {
    check(idict_set_str(handle_, key.c_str(), value.c_str()));
  }
  void set(const std::string &key, const char *value) {
    check(idict_set_str(handle_, key.c_str(), value));
  }
  /// An n-d array of `shape` from the `count` elements at `data` (double,
  /// float, int64_t, int32_t or uint8_t), row-major unless said; copied
  /// once. A shape the elements do not fill exactly throws.
  template <class T>
  void set_array(const std::string &key, const T *data, std::size_t count,
                 std::vector<std::size_t> shape, idict_order order = IDICT_ROW_MAJOR) {
    check(idict_set_array(handle_, key.c_str(), detail::dtype_of<T>::value, data,
                          count * sizeof(T), shape.data(), shape.size(), order));
  }
  /// `values` as an array of `shape` (default: 1-D).
  template <class T>
  void set_array(const std::string &key, const std::vector<T> &values,
                 std::vector<std::size_t> shape = {}, idict_order order = IDICT_ROW_MAJOR) {
    if (shape.empty()) shape.push_back(values.size());
    set_array(key, values.data(), values.size(), std::move(shape), order);
  }
  void remove(const std::string &key) { check(idict_remove(handle_, key.c_str())); }

  double get_f64(const std::string &key) const {
    double value = 0;
    check(idict_get_f64(handle_, key.c_str(), &value));
    return value;
  }
  std::int64_t get_i64(const std::string &key) const {
    std::int64_t value = 0;
    check(idict_get_i64(handle_, key.c_str(), &value));
    return value;
  }

  /// `key` writable by clients within [min, max] (NaN: no bound).
  void writable(const std::string &key, double initial, double min = NAN, double max = NAN) {
    check(idict_writable_f64(handle_, key.c_str(), initial, min, max));
  }
  void writable(const std::string &key, std::int64_t initial, double min = NAN,
                double max = NAN) {
    check(idict_writable_i64(handle_, key.c_str(), initial, min, max));
  }

  /// The loop's safe point: false once terminated; blocks while paused.
  bool wait() {
    int go = 0;
    check(idict_wait(handle_, &go));
    return go != 0;
  }
  /// wait(), waiting at most `seconds` while paused.
  idict_wait_outcome wait_for(double seconds) {
    idict_wait_outcome outcome = IDICT_GO;
    check(idict_wait_timeout(handle_, seconds, &outcome));
    return outcome;
  }
  std::uint64_t notify_update() {
    std::uint64_t version = 0;
    check(idict_notify_update(handle_, &version));
    return version;
  }
  std::uint64_t notify_update_final() {
    std::uint64_t version = 0;
    check(idict_notify_update_final(handle_, &version));
    return version;
  }
  void terminate() { check(idict_terminate(handle_)); }
  void pause() { check(idict_pause(handle_)); }
  void resume() { check(idict_resume(handle_)); }
  void message(idict_level level, const std::string &text) {
    check(idict_message(handle_, level, text.c_str()));
  }
  // A trigger: `actions` are idict_trigger_actions or-ed (0: only log),
  // `level` an idict_level or -1 (warn; error with terminate).
  void trigger(const std::string &name, const std::string &condition,
               int actions = IDICT_TRIGGER_PAUSE, int level = -1,
               const std::string &text = "") {
    check(idict_trigger(handle_, name.c_str(), condition.c_str(), actions,
                        level, text.c_str()));
  }
  void remove_trigger(const std::string &name) {
    check(idict_remove_trigger(handle_, name.c_str()));
  }
  void terminate_on_signals() { check(idict_terminate_on_signals(handle_)); }
  server serve() {
    idict_server_t handle = 0;
    check(idict_serve(handle_, &handle));
    return server(handle);
  }
  std::uint64_t checkpoint(const std::string &path) {
    std::uint64_t version = 0;
    check(idict_checkpoint(handle_, path.c_str(), &version));
    return version;
  }
  /// `f(handle, version, user_data)` after each update; its id.
  std::uint64_t add_callback(idict_callback f, void *user_data) {
    std::uint64_t id = 0;
    check(idict_add_callback(handle_, f, user_data, &id));
    return id;
  }
  bool remove_callback(std::uint64_t id) {
    int removed = 0;
    check(idict_remove_callback(handle_, id, &removed));
    return removed != 0;
  }

 private:
  explicit dict(idict_t handle) noexcept : handle_(handle) {}
  idict_t handle_ = 0;
};

}  // namespace idict

#endif  // IDICT_HPP
