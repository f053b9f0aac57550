"""Report language pieces that are not transforms: sections, attribute vocabulary and matcher, Word2Vec.

``monai_xattn.text.word2vec`` (gensim) is not imported here, so importing this package stays cheap.
"""

from monai_xattn.text.attributes import (
    AttributeExtraction,
    AttributeMatcher,
    AttributeVocabulary,
    NegExRules,
    extract_attributes,
    load_vocabulary,
)
from monai_xattn.text.prompts import (
    DEFAULT_PROMPTS_FILE,
    class_prompt_candidates,
    generate_class_prompts,
    load_prompt_vocabulary,
)
from monai_xattn.text.reports import read_report
from monai_xattn.text.scope import PNEUMONIA_SCOPE, ClauseScope, ScopeRules, scope_clauses
from monai_xattn.text.sections import extract_sections, gloria_clean_sentences, select_sections, split_sentences

__all__ = [
    "AttributeExtraction",
    "AttributeMatcher",
    "AttributeVocabulary",
    "NegExRules",
    "extract_attributes",
    "load_vocabulary",
    "DEFAULT_PROMPTS_FILE",
    "class_prompt_candidates",
    "generate_class_prompts",
    "load_prompt_vocabulary",
    "read_report",
    "PNEUMONIA_SCOPE",
    "ClauseScope",
    "ScopeRules",
    "scope_clauses",
    "extract_sections",
    "gloria_clean_sentences",
    "select_sections",
    "split_sentences",
]
