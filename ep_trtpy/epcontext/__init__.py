"""EPContext models: compile once, ship the context model, load it without building.

A context model is the original model with every subgraph the EP claimed replaced by one ``EPContext`` node
(domain ``com.microsoft``, ORT's contract) that carries our engine file (ep_trtpy/engine/format.py) for the shapes
the subgraph runs with. Two ways to write one, with the same result:

* a session with ORT's session entries ``ep.context_enable=1``, ``ep.context_file_path=CTX.onnx`` and
  ``ep.context_embed_mode=1`` (engine inside the node) or ``0`` (engine file beside the context model): Compile
  hands ORT one EPContext node per fused node (cuda_kernels/shim/ep_context.cpp, attributes from
  :mod:`ep_trtpy.epcontext.node`) and ORT writes the model;
* ``ep-trtpy build MODEL --shapes ... -o CTX.onnx``, which first runs the model once (ORT's CPU provider computes
  what the EP does not claim) to learn the shapes every claimed subgraph sees, then does the above.

Loading a context model (:mod:`ep_trtpy.epcontext.load`) claims each EPContext node whose ``source`` is ours,
reads its engine and checks it against this session (engine format and ep_trtpy versions, backend, GPU compute
capability, native library versions): a mismatch is an error that names what differs and how to rebuild, never a
build. ``ep_trtpy.runtime_stats()["context_engines"]`` counts the engines loaded this way; ``builds`` stays 0.

Node attributes written (ORT's EPContext schema):

    main_context           1 (every node carries its own engine)
    embed_mode             1: ep_cache_context holds the engine file, base64-encoded (ORT's plugin API copies
                           string attributes only up to a NUL byte in some releases); 0: ep_cache_context is the
                           engine file's name, relative to the context model's folder
    ep_cache_context       the engine (embed_mode 1) or its file name (embed_mode 0)
    source                 "TrtPyExecutionProvider": the nodes this EP claims on load
    ep_sdk_version         the ep_trtpy version that wrote it
    hardware_architecture  "sm<major><minor>" of the GPU, or "cpu" for the reference backend
    partition_name         the fused node's name in the writing session
    onnx_model_filename    the original model's file name (for the rebuild hint)
    notes                  JSON: engine format, backend, device, the model's input shapes when known
"""

from ep_trtpy.epcontext.node import DOMAIN, OP_TYPE, SOURCE, ContextError, Settings, learned_shapes

__all__ = ["DOMAIN", "OP_TYPE", "SOURCE", "ContextError", "Settings", "learned_shapes"]
