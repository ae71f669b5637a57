# CUDA architectures we build for. Must be included before project().
#
# Default: machine code (SASS) for Ampere (sm_80, sm_86), Ada (sm_89) and Hopper (sm_90), plus PTX for
# compute_90 so that newer GPUs can JIT-compile it. nvcc 13 has no sm_70. "native" fails on machines without
# a GPU and leaving the list unset means sm_75, so we always set it.
#
# Override for quick builds with the CUDAARCHS environment variable (e.g. CUDAARCHS=90 on an H100) or with
# -DCMAKE_CUDA_ARCHITECTURES=... (pip: --config-settings=cmake.define.CMAKE_CUDA_ARCHITECTURES=90).
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES AND NOT DEFINED ENV{CUDAARCHS})
  set(CMAKE_CUDA_ARCHITECTURES "80-real;86-real;89-real;90" CACHE STRING "CUDA architectures")
endif()
