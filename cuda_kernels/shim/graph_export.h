// OrtGraph -> the graph JSON document of ep_trtpy/_host.py, plus the tensor data that travels beside it.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "shim_common.h"

namespace tp::shim {

// Host tensors handed to the Python host: named constant initializers first (in the order of the document's
// "initializers" list), then tensor-valued node attributes (referenced by {"type": "tensor", "index": k}).
// Owns every buffer a tp_host_tensor points to; movable, not copyable.
class HostTensors {
 public:
  HostTensors() = default;
  HostTensors(const HostTensors&) = delete;
  HostTensors& operator=(const HostTensors&) = delete;
  HostTensors(HostTensors&&) = default;
  HostTensors& operator=(HostTensors&&) = default;
  ~HostTensors();

  // Adds the data of a tensor value (copied to the host when it lives in device memory). Returns its index.
  size_t add(const std::string& name, const OrtValue* value);
  // Adds raw bytes (a large STRING attribute) as a 1-D uint8 tensor, taking the buffer. Returns its index.
  size_t add_bytes(const std::string& name, std::vector<char>&& bytes);
  // Takes ownership of a value ORT created for us (released with ReleaseValue).
  void own(OrtValue* value) { owned_.push_back(value); }

  const tp_host_tensor* data() const { return views_.empty() ? nullptr : views_.data(); }
  size_t size() const { return views_.size(); }

 private:
  struct Item {
    std::string name;
    std::vector<int64_t> dims;
    std::vector<unsigned char> host_copy;
  };
  std::deque<Item> items_;  // stable addresses for the views
  std::vector<tp_host_tensor> views_;
  std::vector<OrtValue*> owned_;
};

struct GraphExport {
  std::string json;
  std::vector<const OrtNode*> nodes;  // index in the document's "nodes" -> ORT node (valid during the ORT call)
  HostTensors tensors;
};

// Writes the document for `graph`. With `fused_node` (Compile), adds "fused_node" with that node's input and
// output names in Node_GetInputs / Node_GetOutputs order.
void export_graph(const OrtGraph* graph, const OrtNode* fused_node, GraphExport* out);

// The names of a node's inputs or outputs ("" for an absent optional one), in ORT's order.
std::vector<std::string> node_input_names(const OrtNode* node);
std::vector<std::string> node_output_names(const OrtNode* node);
std::string node_name(const OrtNode* node);

// Whether ReadOpAttr writes a terminating NUL after a STRING value (decided by the ABI probe).
extern bool g_string_attr_has_nul;
// Whether CreateOpAttr keeps a STRING value's bytes past a NUL (decided by the ABI probe; EPContext payloads).
extern bool g_string_attr_binary;

}  // namespace tp::shim
