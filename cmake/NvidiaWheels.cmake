# Locate cuBLASLt and cuDNN from NVIDIA's PyPI wheels (nvidia-cublas, nvidia-cudnn-cu13).
#
# The wheels install into the namespace package `nvidia`: cuBLAS(Lt) and NVRTC under nvidia/cu13/{include,lib},
# cuDNN under nvidia/cudnn/{include,lib}. They ship only versioned sonames (libcublasLt.so.13, libcudnn.so.9),
# so we look the files up by those names. `nvidia` is a namespace package: ask for __path__, not __file__.
#
# Defines imported targets tp::cublasLt and tp::cudnn.
execute_process(
  COMMAND "${Python_EXECUTABLE}" -c "import nvidia; print(';'.join(nvidia.__path__))"
  OUTPUT_VARIABLE TP_NVIDIA_PATHS OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE TP_NVIDIA_RC)
if(NOT TP_NVIDIA_RC EQUAL 0 OR TP_NVIDIA_PATHS STREQUAL "")
  message(FATAL_ERROR "ep_trtpy: the Python package 'nvidia' (nvidia-cublas, nvidia-cudnn-cu13 wheels) is not "
                      "importable by ${Python_EXECUTABLE}; install them or build with build isolation.")
endif()

set(_cublas_hints "")
set(_cudnn_hints "")
foreach(p IN LISTS TP_NVIDIA_PATHS)
  list(APPEND _cublas_hints "${p}/cu13")
  list(APPEND _cudnn_hints "${p}/cudnn")
endforeach()

find_path(TP_CUBLASLT_INCLUDE_DIR cublasLt.h PATHS ${_cublas_hints} PATH_SUFFIXES include NO_DEFAULT_PATH)
find_library(TP_CUBLASLT_LIBRARY NAMES libcublasLt.so.13 cublasLt PATHS ${_cublas_hints} PATH_SUFFIXES lib NO_DEFAULT_PATH)
find_path(TP_CUDNN_INCLUDE_DIR cudnn.h PATHS ${_cudnn_hints} PATH_SUFFIXES include NO_DEFAULT_PATH)
find_library(TP_CUDNN_LIBRARY NAMES libcudnn.so.9 cudnn PATHS ${_cudnn_hints} PATH_SUFFIXES lib NO_DEFAULT_PATH)

foreach(v TP_CUBLASLT_INCLUDE_DIR TP_CUBLASLT_LIBRARY TP_CUDNN_INCLUDE_DIR TP_CUDNN_LIBRARY)
  if(NOT ${v})
    message(FATAL_ERROR "ep_trtpy: ${v} not found under ${TP_NVIDIA_PATHS}")
  endif()
endforeach()
message(STATUS "ep_trtpy: cuBLASLt ${TP_CUBLASLT_LIBRARY}")
message(STATUS "ep_trtpy: cuDNN    ${TP_CUDNN_LIBRARY}")

add_library(tp::cublasLt SHARED IMPORTED)
set_target_properties(tp::cublasLt PROPERTIES IMPORTED_LOCATION "${TP_CUBLASLT_LIBRARY}"
                                              INTERFACE_INCLUDE_DIRECTORIES "${TP_CUBLASLT_INCLUDE_DIR}")
add_library(tp::cudnn SHARED IMPORTED)
set_target_properties(tp::cudnn PROPERTIES IMPORTED_LOCATION "${TP_CUDNN_LIBRARY}"
                                           INTERFACE_INCLUDE_DIRECTORIES "${TP_CUDNN_INCLUDE_DIR}")
