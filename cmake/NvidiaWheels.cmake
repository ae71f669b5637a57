# Locate cuBLASLt and cuDNN from NVIDIA's PyPI wheels (nvidia-cublas, nvidia-cudnn-cu13).
#
# The wheels install into the namespace package `nvidia`: cuBLAS(Lt) and NVRTC under nvidia/cu13/{include,lib},
# cuDNN under nvidia/cudnn/{include,lib}. They ship only versioned sonames (libcublasLt.so.13, libcudnn.so.9),
# so we look the files up by those names. `nvidia` is a namespace package: ask for __path__, not __file__.
#
# Defines imported targets tp::cublasLt, tp::cudnn, tp::nvrtc (NVIDIA's wheels) and tp::cudnn_frontend (the
# header-only cuDNN frontend of the nvidia-cudnn-frontend wheel, which installs its headers into
# site-packages/include; found through the wheel's file list, without importing its Python package).
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
find_library(TP_NVRTC_LIBRARY NAMES libnvrtc.so.13 nvrtc PATHS ${_cublas_hints} PATH_SUFFIXES lib NO_DEFAULT_PATH)

execute_process(
  COMMAND "${Python_EXECUTABLE}" -c
          "import importlib.metadata as m, os; d = m.distribution('nvidia-cudnn-frontend'); f = [x for x in d.files if str(x).replace(os.sep, '/').endswith('include/cudnn_frontend.h')]; print(os.path.dirname(str(d.locate_file(f[0]))) if f else '')"
  OUTPUT_VARIABLE TP_CUDNN_FRONTEND_INCLUDE_DIR OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE TP_FE_RC)
if(NOT TP_FE_RC EQUAL 0 OR TP_CUDNN_FRONTEND_INCLUDE_DIR STREQUAL "" OR
   NOT EXISTS "${TP_CUDNN_FRONTEND_INCLUDE_DIR}/cudnn_frontend.h")
  message(FATAL_ERROR "ep_trtpy: the cuDNN frontend headers (wheel nvidia-cudnn-frontend) are not installed for "
                      "${Python_EXECUTABLE}; install it or build with build isolation.")
endif()

foreach(v TP_CUBLASLT_INCLUDE_DIR TP_CUBLASLT_LIBRARY TP_CUDNN_INCLUDE_DIR TP_CUDNN_LIBRARY TP_NVRTC_LIBRARY)
  if(NOT ${v})
    message(FATAL_ERROR "ep_trtpy: ${v} not found under ${TP_NVIDIA_PATHS}")
  endif()
endforeach()
message(STATUS "ep_trtpy: cuBLASLt ${TP_CUBLASLT_LIBRARY}")
message(STATUS "ep_trtpy: cuDNN    ${TP_CUDNN_LIBRARY}")
message(STATUS "ep_trtpy: NVRTC    ${TP_NVRTC_LIBRARY}")
message(STATUS "ep_trtpy: cuDNN frontend headers ${TP_CUDNN_FRONTEND_INCLUDE_DIR}")

add_library(tp::cublasLt SHARED IMPORTED)
set_target_properties(tp::cublasLt PROPERTIES IMPORTED_LOCATION "${TP_CUBLASLT_LIBRARY}"
                                              INTERFACE_INCLUDE_DIRECTORIES "${TP_CUBLASLT_INCLUDE_DIR}")
add_library(tp::cudnn SHARED IMPORTED)
set_target_properties(tp::cudnn PROPERTIES IMPORTED_LOCATION "${TP_CUDNN_LIBRARY}"
                                           INTERFACE_INCLUDE_DIRECTORIES "${TP_CUDNN_INCLUDE_DIR}")
add_library(tp::nvrtc SHARED IMPORTED)
set_target_properties(tp::nvrtc PROPERTIES IMPORTED_LOCATION "${TP_NVRTC_LIBRARY}"
                                           INTERFACE_INCLUDE_DIRECTORIES "${TP_CUBLASLT_INCLUDE_DIR}")
add_library(tp::cudnn_frontend INTERFACE IMPORTED)
set_target_properties(tp::cudnn_frontend PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${TP_CUDNN_FRONTEND_INCLUDE_DIR}")
