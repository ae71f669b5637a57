"""The CUDA device a session runs on, and a clear error for a ``device_id`` that does not exist.

ORT reads the provider option ``device_id`` itself, before our EP exists: for a plugin EP named in ``providers``,
onnxruntime's Python binding picks the registered EP device whose ``ep_options["device_id"]``, else
``ep_metadata["cuda_device_id"]`` (ours: the CUDA ordinal; -1 on the reference backend), else hardware device id
equals it (read from onnxruntime 1.32's binary). When none does, session creation fails with "Unknown Provider
Type" and ``onnxruntime.InferenceSession`` silently retries with the CPU provider alone. The check therefore runs
before ORT looks: :func:`install_session_check` (``ep_trtpy.register()`` calls it) wraps onnxruntime's
provider-argument normalization, and a session that asks TrtPyExecutionProvider for a device_id no EP device has
raises :class:`DeviceNotFoundError`, naming the CUDA devices present. It is a LookupError, which InferenceSession
does not turn into a CPU retry. On the reference backend (no usable CUDA device) ``device_id`` 0 is accepted (and
taken out of ORT's sight, which would find no device for it) and any other value is that error.

``trt_device_id`` (ORT does not read it) and ``SessionOptions.add_provider_for_devices`` reach our ``create_ep``,
which makes the same check with :func:`check_device_id` (ep_trtpy/_host.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class DeviceNotFoundError(LookupError):
    """A device_id that names no usable device (the message lists the CUDA devices present)."""


def present() -> list[tuple[int, str]]:
    """(ordinal, name) of every usable CUDA device; empty without a driver or device."""
    from ep_trtpy import _kernels

    out = []
    for ordinal in range(int(_kernels.cuda_device_count())):
        try:
            name = str(_kernels.device_info(ordinal)["name"])
        except Exception:  # noqa: BLE001  a device that cannot describe itself is still present
            name = "unnamed"
        out.append((ordinal, name))
    return out


def describe(devices: Sequence[tuple[int, str]]) -> str:
    if not devices:
        return ("no CUDA device is usable on this machine: TrtPyExecutionProvider runs on the numpy reference "
                "backend, which takes device_id 0 or none")
    return "CUDA devices present: " + ", ".join(f"{k} ({name})" for k, name in devices)


def check_device_id(device_id: int, offered: Sequence[int] | None = None,
                    devices: Sequence[tuple[int, str]] | None = None) -> None:
    """Raise DeviceNotFoundError unless `device_id` is usable: a CUDA device present and, when `offered` is given
    (the ordinals ORT gave the EP), one of those; without CUDA devices only 0."""
    devices = present() if devices is None else list(devices)
    ordinals = [k for k, _ in devices]
    if not devices:
        if device_id != 0:
            raise DeviceNotFoundError(f"TrtPyExecutionProvider: device_id {device_id} does not exist; "
                                      f"{describe(devices)}")
        return
    if device_id not in ordinals:
        raise DeviceNotFoundError(f"TrtPyExecutionProvider: device_id {device_id} does not exist; "
                                  f"{describe(devices)}")
    if offered is not None and device_id not in offered:
        raise DeviceNotFoundError(f"TrtPyExecutionProvider: CUDA device {device_id} is present, but ORT offers "
                                  f"this EP only device_id {', '.join(map(str, offered)) or 'none'}; "
                                  f"{describe(devices)}")


def ep_device_ids(ep_name: str) -> list[int] | None:
    """The CUDA ordinals of the EP devices ORT registered for `ep_name` (None: it runs on the reference backend)."""
    import onnxruntime as ort

    ids: list[int] = []
    for d in ort.get_ep_devices():
        if d.ep_name != ep_name:
            continue
        meta = dict(d.ep_metadata)
        if meta.get("backend") == "reference":
            return None
        try:
            ids.append(int(meta.get("cuda_device_id", "-1")))
        except ValueError:
            continue
    return ids


def checked_provider_options(ep_name: str, names: Sequence[str], options: Sequence[dict[str, str]]
                             ) -> list[dict[str, str]]:
    """`options` (one dict per provider in `names`) after the device_id check of `ep_name`'s; raises
    DeviceNotFoundError (see the module docstring)."""
    out = [dict(o) for o in options]
    if ep_name not in names:
        return out
    opts = out[list(names).index(ep_name)]
    text = opts.get("device_id")
    if text is None:
        return out
    try:
        device_id = int(str(text).strip())
    except ValueError:
        return out  # not a number: ORT ignores it and our option parser reports it
    ids = ep_device_ids(ep_name)
    if ids is None:  # reference backend: ORT would match device_id against no device at all
        check_device_id(device_id, devices=[])
        del opts["device_id"]
    elif device_id >= 0 and device_id not in ids:
        check_device_id(device_id, offered=ids)
    return out


_WRAPPED = "_ep_trtpy_device_check"


def install_session_check(ep_name: str) -> bool:
    """Wrap onnxruntime's ``check_and_normalize_provider_args`` (used by every InferenceSession creation and
    set_providers) with :func:`checked_provider_options`; idempotent. False when this onnxruntime has no such
    function (the check then happens only in create_ep, and ORT's own device_id lookup may still fall back)."""
    try:
        from onnxruntime.capi import onnxruntime_inference_collection as collection
    except ImportError:
        return False
    original: Callable[..., Any] | None = getattr(collection, "check_and_normalize_provider_args", None)
    if original is None:
        return False
    if getattr(original, _WRAPPED, False):
        return True

    def check_and_normalize_provider_args(*args: Any, **kwargs: Any) -> Any:
        names, options = original(*args, **kwargs)
        return names, checked_provider_options(ep_name, names, options)

    setattr(check_and_normalize_provider_args, _WRAPPED, True)
    check_and_normalize_provider_args.__wrapped__ = original  # type: ignore[attr-defined]
    check_and_normalize_provider_args.__doc__ = original.__doc__
    collection.check_and_normalize_provider_args = check_and_normalize_provider_args
    return True
