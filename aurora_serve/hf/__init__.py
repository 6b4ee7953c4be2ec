"""AuroraCap through the transformers API of AuroraCap's README, done right (torch + transformers; no SGLang).

    from aurora_serve.hf import AuroraForConditionalGeneration, AuroraProcessor

    processor = AuroraProcessor.from_pretrained("wchai/AuroraCap-7B-VID-xtuner")
    model = AuroraForConditionalGeneration.from_pretrained("wchai/AuroraCap-7B-VID-xtuner", torch_dtype=torch.float16)
    prompt = processor.apply_chat_template(conversation, add_generation_prompt=True)
    inputs = processor(videos=list(frames), text=prompt, return_tensors="pt").to("cuda:0", torch.float16)
    output = model.generate(**inputs, max_new_tokens=1024, token_kept_ratio=0.2)
    processor.decode(output[0], skip_special_tokens=True)

Importing this package registers ``model_type: aurora`` (the authors' HF repos, and what ``save_pretrained``
writes) with ``AutoConfig``, ``AutoModelForImageTextToText``, ``AutoModelForMultimodalLM`` and
``AutoProcessor``. The Auto classes choose by ``model_type``, so an xtuner checkpoint (a Llama config) or a
``model_type: llava`` conversion still needs these classes by name. Modules: ``config``, ``processing``,
``spans`` (placeholder widening), ``modeling``, ``loading``.
"""

from transformers import AutoConfig, AutoModelForImageTextToText, AutoModelForMultimodalLM, AutoProcessor

from aurora_serve.hf.config import AuroraConfig
from aurora_serve.hf.modeling import DEFAULT_TOKEN_KEPT_RATIO, AuroraForConditionalGeneration
from aurora_serve.hf.processing import AuroraProcessor

__all__ = ["DEFAULT_TOKEN_KEPT_RATIO", "AuroraConfig", "AuroraForConditionalGeneration", "AuroraProcessor"]

AutoConfig.register("aurora", AuroraConfig, exist_ok=True)
for _auto in (AutoModelForImageTextToText, AutoModelForMultimodalLM):
    _auto.register(AuroraConfig, AuroraForConditionalGeneration, exist_ok=True)
AutoProcessor.register(AuroraConfig, AuroraProcessor, exist_ok=True)
