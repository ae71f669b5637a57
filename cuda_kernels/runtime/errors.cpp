// Per-thread error messages, process-wide counters, and the host-callback table.
#include <atomic>
#include <cstring>
#include <mutex>
#include <string>

#include "tp/runtime_api.h"

namespace {
thread_local std::string g_last_error;
std::atomic<uint64_t> g_counters[TP_COUNTER_COUNT];
std::mutex g_callbacks_mutex;
tp_host_callbacks g_callbacks;
std::atomic<bool> g_callbacks_set{false};
std::mutex g_report_mutex;
std::string g_abi_report;

const char* const kCounterNames[TP_COUNTER_COUNT] = {
    "gpu_engine_runs", "reference_runs", "host_get_engine", "staged_host_inputs",
    "copies_h2d",      "copies_d2h",     "copies_d2d",      "compute_calls",
    "graph_captures",  "graph_replays",  "tactics_timed",   "plans_built",
    "plans_restored",
};
}  // namespace

extern "C" {

const char* tp_last_error(void) { return g_last_error.c_str(); }

void tp_set_last_error(const char* message) { g_last_error = message ? message : ""; }

void tp_counter_add(tp_counter counter, uint64_t n) {
  if (counter >= 0 && counter < TP_COUNTER_COUNT) g_counters[counter].fetch_add(n, std::memory_order_relaxed);
}

uint64_t tp_counter_get(tp_counter counter) {
  if (counter < 0 || counter >= TP_COUNTER_COUNT) return 0;
  return g_counters[counter].load(std::memory_order_relaxed);
}

const char* tp_counter_name(tp_counter counter) {
  if (counter < 0 || counter >= TP_COUNTER_COUNT) return "";
  return kCounterNames[counter];
}

void tp_counters_reset(void) {
  for (auto& c : g_counters) c.store(0, std::memory_order_relaxed);
}

void tp_set_host_callbacks(const tp_host_callbacks* callbacks) {
  std::lock_guard<std::mutex> lock(g_callbacks_mutex);
  if (callbacks == nullptr) {
    g_callbacks_set.store(false);
    std::memset(&g_callbacks, 0, sizeof(g_callbacks));
    return;
  }
  g_callbacks = *callbacks;
  g_callbacks_set.store(true);
}

const tp_host_callbacks* tp_get_host_callbacks(void) {
  return g_callbacks_set.load() ? &g_callbacks : nullptr;
}

void tp_set_abi_report(const char* report) {
  std::lock_guard<std::mutex> lock(g_report_mutex);
  g_abi_report = report ? report : "";
}

const char* tp_get_abi_report(void) {
  std::lock_guard<std::mutex> lock(g_report_mutex);
  return g_abi_report.c_str();
}

}  // extern "C"
