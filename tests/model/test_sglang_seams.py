"""SGLang's published seams that aurora-serve plugs into: an upgrade that moves or breaks one fails here, loudly.

SGLang's registry logs and skips a model module that fails to import, so import it directly too.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import sglang

from aurora_serve.model import auroracap, processor


def test_sglang_is_the_pinned_version():
    assert sglang.__version__ == "0.5.23", "the seams below were checked against SGLang 0.5.23 only"


def test_model_module_exports_entry_class_with_the_multimodal_hooks():
    (cls,) = auroracap.EntryClass
    assert cls.__name__ == "AuroraCapForConditionalGeneration"
    for hook in ("pad_input_ids", "get_image_feature", "get_video_feature", "forward", "load_weights"):
        assert callable(getattr(cls, hook)), hook
    from sglang.srt.managers import mm_utils

    assert list(inspect.signature(mm_utils.general_mm_embed_routine).parameters)[:5] == [
        "input_ids", "forward_batch", "language_model", "multimodal_model", "data_embedding_funcs"]


def test_processor_is_a_base_multimodal_processor_for_our_model():
    from sglang.srt.multimodal.processors.base_processor import BaseMultimodalProcessor

    assert issubclass(processor.AuroraCapProcessor, BaseMultimodalProcessor)
    assert processor.AuroraCapProcessor.models == [auroracap.AuroraCapForConditionalGeneration]
    params = list(inspect.signature(BaseMultimodalProcessor.process_mm_data_async).parameters)
    assert params[:5] == ["self", "image_data", "audio_data", "input_text", "request_obj"]


def test_registration_through_the_external_variables_in_a_fresh_interpreter():
    """What SGLang's spawned scheduler does: discover our class from the package named in the environment."""
    code = ("from sglang.srt.models.registry import ModelRegistry;"
            "from sglang.srt.managers.multimodal_processor import import_processors, PROCESSOR_MAPPING;"
            "print('AuroraCapForConditionalGeneration' in ModelRegistry.get_supported_archs());"
            "import_processors('aurora_serve.model', overwrite=True);"
            "print(sorted(c.__name__ for c in PROCESSOR_MAPPING.values() if c.__module__.startswith('aurora_serve')))")
    env = {**os.environ, "SGLANG_EXTERNAL_MODEL_PACKAGE": "aurora_serve.model", "SGLANG_USE_CPU_ENGINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-2:] == ["True", "['AuroraCapProcessor']"], out.stdout + out.stderr[-2000:]


def test_engine_refuses_to_start_when_sglang_was_imported_before_registration():
    """SGLang reads SGLANG_EXTERNAL_MM_MODEL_ARCH at import: late registration would serve text only, silently."""
    code = ("import sglang.srt.configs.model_config\n"
            "from aurora_serve.engine import _check_registration, register_out_of_tree\n"
            "register_out_of_tree('cpu')\n"
            "try:\n    _check_registration('cpu')\nexcept RuntimeError as e:\n    print('refused:', e)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SGLANG_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "refused: sglang was imported before aurora-serve registered AuroraCap" in out.stdout
