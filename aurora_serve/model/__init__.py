"""AuroraCap as an out-of-tree SGLang package.

SGLang scans the *non-package* modules of this package (``SGLANG_EXTERNAL_MODEL_PACKAGE`` and
``SGLANG_EXTERNAL_MM_PROCESSOR_PACKAGE``) for ``EntryClass`` and ``BaseMultimodalProcessor`` subclasses:
``auroracap`` (the model class) and ``processor`` (the multimodal processor) import SGLang; everything else
here is plain PyTorch and imports without it.
"""
