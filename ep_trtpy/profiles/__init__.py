"""Optimization profiles: the specification the host and builder use to pick which engine serves a run.

:mod:`.spec` parses ``profile_min_shapes``/``profile_opt_shapes``/``profile_max_shapes`` into :class:`Profile`
objects; :mod:`.policy` selects a profile for run shapes, buckets dynamic dimensions when there are no profiles,
and words the errors and log lines. Pure Python: nothing here needs a GPU or onnxruntime.
"""

from ep_trtpy.profiles.policy import (bucket, check_against_inputs, is_dynamic, outside_warning, select,
                                      strict_error, unknown_names, unnamed_inputs)
from ep_trtpy.profiles.spec import (OPTIONS, Profile, ProfileError, canonical, format_shape, format_shapes,
                                    parse_profiles, parse_shapes)

__all__ = ["OPTIONS", "Profile", "ProfileError", "bucket", "canonical", "check_against_inputs", "format_shape",
           "format_shapes", "is_dynamic", "outside_warning", "parse_profiles", "parse_shapes", "select",
           "strict_error", "unknown_names", "unnamed_inputs"]
