// OrtSyncStreamImpl / OrtSyncNotificationImpl over a CUDA stream and CUDA events.
//
//   GetHandle        -> the cudaStream_t (what KernelContext_GetGPUComputeStream returns inside Compute)
//   Activate         -> record the event on our stream
//   WaitOnDevice     -> the consumer stream (its handle from SyncStream_GetHandle) waits for the event
//   WaitOnHost       -> the host waits for the event
//   Flush            -> synchronize the stream (ORT calls it once per run; run() returns finished outputs)
//   OnSessionRunEnd  -> nothing to clean up (Compute frees its staging buffers itself)
#include "factory.h"
#include "ort_values.h"

namespace tp::shim {
namespace {

struct Stream {
  OrtSyncStreamImpl base{};  // first member
  int device = 0;
  void* handle = nullptr;  // cudaStream_t
};

struct Notification {
  OrtSyncNotificationImpl base{};  // first member
  Stream* stream = nullptr;
  void* event = nullptr;  // cudaEvent_t
};

OrtStatus* runtime_status(const char* what) {
  return make_status(ort::kEpFail, std::string(kEpName) + " " + what + ": " + runtime_error_message());
}

void notification_release(OrtSyncNotificationImpl* self) noexcept {
  auto* n = reinterpret_cast<Notification*>(self);
  tp_cuda_event_destroy(n->event);
  delete n;
}

OrtStatus* notification_activate(OrtSyncNotificationImpl* self) noexcept {
  auto* n = reinterpret_cast<Notification*>(self);
  return tp_cuda_event_record(n->event, n->stream->handle) == 0 ? nullptr : runtime_status("recording an event");
}

OrtStatus* notification_wait_on_device(OrtSyncNotificationImpl* self, OrtSyncStream* consumer) noexcept {
  auto* n = reinterpret_cast<Notification*>(self);
  void* handle = consumer ? api<ort::api::SyncStream_GetHandle>()(consumer) : nullptr;
  if (handle == nullptr)  // a consumer without a CUDA stream: make the data ready for anyone
    return tp_cuda_event_synchronize(n->event) == 0 ? nullptr : runtime_status("waiting for an event");
  return tp_cuda_stream_wait_event(handle, n->event) == 0 ? nullptr
                                                           : runtime_status("making a stream wait for an event");
}

OrtStatus* notification_wait_on_host(OrtSyncNotificationImpl* self) noexcept {
  auto* n = reinterpret_cast<Notification*>(self);
  return tp_cuda_event_synchronize(n->event) == 0 ? nullptr : runtime_status("waiting for an event");
}

void stream_release(OrtSyncStreamImpl* self) noexcept {
  auto* s = reinterpret_cast<Stream*>(self);
  tp_cuda_stream_destroy(s->handle);  // pending work completes first (CUDA semantics)
  delete s;
}

void* stream_get_handle(OrtSyncStreamImpl* self) noexcept { return reinterpret_cast<Stream*>(self)->handle; }

OrtStatus* stream_create_notification(OrtSyncStreamImpl* self, OrtSyncNotificationImpl** out) noexcept {
  return guard("CreateNotification", [&]() -> OrtStatus* {
    *out = nullptr;
    auto* s = reinterpret_cast<Stream*>(self);
    void* event = tp_cuda_event_create(s->device);
    if (event == nullptr) return runtime_status("creating a CUDA event");
    auto* n = new Notification();
    n->base.ort_version_supported = ort::kTargetApiVersion;
    n->base.Release = notification_release;
    n->base.Activate = notification_activate;
    n->base.WaitOnDevice = notification_wait_on_device;
    n->base.WaitOnHost = notification_wait_on_host;
    fill_reserve(n->base.reserved);
    n->stream = s;
    n->event = event;
    *out = &n->base;
    return nullptr;
  });
}

OrtStatus* stream_flush(OrtSyncStreamImpl* self) noexcept {
  auto* s = reinterpret_cast<Stream*>(self);
  return tp_cuda_stream_synchronize(s->handle) == 0 ? nullptr : runtime_status("synchronizing the stream");
}

OrtStatus* stream_on_session_run_end(OrtSyncStreamImpl*) noexcept { return nullptr; }

}  // namespace

OrtStatus* create_sync_stream(OrtEpFactory* self, const OrtMemoryDevice* device, const OrtKeyValuePairs*,
                              OrtSyncStreamImpl** out) noexcept {
  return guard("CreateSyncStreamForDevice", [&]() -> OrtStatus* {
    *out = nullptr;
    if (!as_factory(self)->gpu) fail(ort::kNotImplemented, "no CUDA device: this EP has no streams");
    Placement where = placement_of(device);
    if (!where.ours) fail(ort::kInvalidArgument, "asked for a stream of a device that is not an NVIDIA GPU");
    if (where.device_id < 0 || where.device_id >= tp_cuda_device_count())
      fail(ort::kInvalidArgument, "asked for a stream of CUDA device " + std::to_string(where.device_id) +
                                      ", which does not exist");
    void* handle = tp_cuda_stream_create(where.device_id);
    if (handle == nullptr) fail("creating a CUDA stream: " + runtime_error_message());
    auto* s = new Stream();
    s->base.ort_version_supported = ort::kTargetApiVersion;
    s->base.Release = stream_release;
    s->base.GetHandle = stream_get_handle;
    s->base.CreateNotification = stream_create_notification;
    s->base.Flush = stream_flush;
    s->base.OnSessionRunEnd = stream_on_session_run_end;
    fill_reserve(s->base.reserved);
    s->device = where.device_id;
    s->handle = handle;
    *out = &s->base;
    return nullptr;
  });
}

}  // namespace tp::shim
