"""ctypes mirror of include/kgen_model.h (the C ABI of a compiled kgen model).

Every struct here matches the header field for field; tests/ref/py_pkg_check.py
compares each ctypes.sizeof and field offset with what a C compiler gives for
the header, so a change on either side fails make check.
"""
import ctypes as C

KGM_TOK_BOS = 1
KGM_TOK_SPECIAL = 2


class kgm_open_params(C.Structure):
    _fields_ = [
        ("n_threads", C.c_int),
        ("n_ctx", C.c_int),
        ("weights_path", C.c_char_p),
    ]


class kgm_info(C.Structure):
    _fields_ = [
        ("abi_version", C.c_int),
        ("arch", C.c_char_p),
        ("name", C.c_char_p),
        ("weight_type", C.c_char_p),
        ("target_cpu", C.c_char_p),
        ("content_hash", C.c_char_p),
        ("n_layer", C.c_int),
        ("n_embd", C.c_int),
        ("n_head", C.c_int),
        ("n_head_kv", C.c_int),
        ("head_dim", C.c_int),
        ("n_ff", C.c_int),
        ("n_vocab", C.c_int),
        ("n_ctx_train", C.c_int),
        ("n_ctx", C.c_int),
        ("n_batch", C.c_int),
        ("n_threads", C.c_int),
        ("bos", C.c_int32),
        ("eos", C.c_int32),
        ("has_chat_template", C.c_int),
        ("weight_bytes", C.c_uint64),
        ("kv_bytes", C.c_uint64),
        ("workspace_bytes", C.c_uint64),
    ]


class kgm_message(C.Structure):
    _fields_ = [
        ("role", C.c_char_p),
        ("content", C.c_char_p),
    ]


class kgm_sampler_params(C.Structure):
    _fields_ = [
        ("temp", C.c_float),
        ("top_k", C.c_int),
        ("top_p", C.c_float),
        ("min_p", C.c_float),
        ("repeat_penalty", C.c_float),
        ("repeat_last_n", C.c_int),
        ("seed", C.c_uint64),
    ]


_model_p = C.c_void_p  # kgm_model * (opaque)
_F = C.CFUNCTYPE
_float_p = C.POINTER(C.c_float)
_i32_p = C.POINTER(C.c_int32)

_V1_FIELDS = [
    ("abi_version", C.c_int),
    ("open", _F(_model_p, C.POINTER(kgm_open_params), C.c_char_p, C.c_size_t)),
    ("close", _F(None, _model_p)),
    ("error", _F(C.c_char_p, _model_p)),
    ("describe", _F(None, _model_p, C.POINTER(kgm_info))),
    ("tokenize", _F(C.c_int, _model_p, C.c_char_p, C.c_size_t, C.c_int, _i32_p, C.c_int)),
    ("token_piece", _F(C.c_int, _model_p, C.c_int32, C.c_char_p, C.c_size_t)),
    ("is_eog", _F(C.c_int, _model_p, C.c_int32)),
    ("chat", _F(C.c_int, _model_p, C.POINTER(kgm_message), C.c_int, C.c_int, C.c_char_p, C.c_size_t)),
    ("prefill", _F(_float_p, _model_p, _i32_p, C.c_int, C.c_int)),
    ("decode", _F(_float_p, _model_p, C.c_int32, C.c_int)),
    ("reset", _F(None, _model_p)),
    ("sampler_init", _F(None, _model_p, C.POINTER(kgm_sampler_params))),
    ("sample", _F(C.c_int32, _model_p, _float_p)),
    ("sampler_accept", _F(None, _model_p, C.c_int32)),
]

# ABI version 2 appends the encoder calls (kgm_info.arch "bert").
_V2_FIELDS = _V1_FIELDS + [
    ("embed_dim", _F(C.c_int, _model_p)),
    ("embed", _F(C.c_int, _model_p, C.POINTER(C.c_char_p), C.c_int, _float_p)),
    ("embed_tokens", _F(C.c_int, _model_p, C.POINTER(_i32_p), C.POINTER(C.c_int), C.c_int, _float_p)),
]


class kgm_api_v1(C.Structure):
    _fields_ = _V1_FIELDS


class kgm_api_v2(C.Structure):
    _fields_ = _V2_FIELDS


# The structs of kgen_model.h, by their C names (for the layout check).
STRUCTS = {
    "kgm_open_params": kgm_open_params,
    "kgm_info": kgm_info,
    "kgm_message": kgm_message,
    "kgm_sampler_params": kgm_sampler_params,
    "kgm_api_v1": kgm_api_v1,
}
