"""Languages: resource tiers, families, scripts, task coverage and URIEL distances.

The table
---------
``LANGUAGES`` is the one table of every language the project touches: XTREME's 40
languages (Hu et al. 2020), every language of the offline data in ``../shared/data``
(XNLI, myXNLI, AmericasNLI, PAWS-X, UD-POS incl. XTREME-R's lt pl ro uk wo, PAN-X,
XQuAD incl. ro, MLQA, TyDiQA, BUCC, XTREME Tatoeba incl. az, XCOPA incl. ht qu, and all
108 languages of LASER's Tatoeba). One row per language:

``code``
    The key used everywhere in the project. ISO 639-1 where XTREME (or the XTREME-format
    file names of the data) use it (``sw``, ``zh``, ``qu``, ``gn``); otherwise the code
    the data files use: AmericasNLI's ``aym bzd cni hch nah oto quy shp tar`` and, for
    languages found only in LASER's Tatoeba, LASER's 3-letter code (``cat``, ``amh``,
    ``lvs``...).
``iso3``
    The ISO 639-3 code handed to URIEL/lang2vec. Where the data use a macrolanguage or
    collective code, this is the individual language URIEL knows best: ``zh`` -> cmn,
    ``ar`` -> arb, ``sw`` -> swh, ``fa`` -> pes, ``ms`` -> zsm, ``et`` -> est,
    ``az`` -> azj, ``qu`` -> quz (XCOPA's Cusco Quechua), ``gn`` -> gug (Paraguayan
    Guarani), ``aym`` -> ayr (Central Aymara), ``nah`` -> nhe (Eastern Huasteca Nahuatl;
    AmericasNLI's ``nah`` is a collective code URIEL lacks, so one Nahuatl variety stands
    in for it), ``oto`` -> ote (Mezquital Otomi, i.e. Hnahnu), ``lvs`` -> lav,
    ``sqi`` -> als, ``mon`` -> khk, ``uzb`` -> uzn, ``kur`` -> kmr (Kurmanji),
    ``ber`` -> tzm (Central Atlas Tamazight standing in for the collective "Berber"),
    ``yid`` -> ydd.
``family`` / ``genus``
    Top-level family after Glottolog/WALS, with WALS-style names (Niger-Congo rather than
    Glottolog's Atlantic-Congo). Isolates name themselves (Basque); Haitian and Chavacano
    are ``Creole``; Esperanto, Interlingua etc. are ``Constructed``. ``genus`` is the
    WALS-style genus (Germanic, Romance, Bantoid, ...), informative only.
``script``
    The language's usual script; for the LASER Tatoeba languages, the majority script of
    their Tatoeba file (checked by Unicode character names), so Serbian, Uzbek and Lingua
    Franca Nova, written there in Latin and Cyrillic, count as Latin. ``Japanese`` means
    kana + kanji.
``joshi``
    The language's class in Joshi, Santy, Budhiraja, Bali and Choudhury (2020), "The State
    and Fate of Linguistic Diversity and Inclusion in the NLP World", ACL 2020, from
    0 ("the left-behinds") to 5 ("the winners"), as published in their per-language list
    (``lang2tax.txt``). The list is vendored in ``xfer_nb/data/joshi2020_lang2tax.tsv``
    (classes 1-5 complete, class 0 excerpted; provenance in the file) and
    ``tests/test_languages.py`` checks every published class here against it, through the
    list's name for the language (``JOSHI_NAMES``; e.g. Chinese is "mandarin", Haitian
    Creole "haitian", Swiss German "alemannic", Old English "anglo-saxon").
``joshi_estimated``
    True where the language is not in Joshi et al.'s list under any matching name and the
    class had to be estimated: 1 ("the scraping-bys") if the language had a Wikipedia
    edition or a comparable web presence by 2020, else 0. Ten languages: Asháninka,
    Algerian Arabic, Kadazan Dusun, Coastal Kadazan, Lingua Franca Nova, North Moluccan
    Malay, Novial, Old East Slavic, Swabian and Talossan (``estimated_joshi()``).
``laser``
    The language's code in LASER's Tatoeba (``extra/laser-tatoeba``), if it is there.
``xtreme_tasks``
    The XTREME tasks whose published language list includes the language (Hu et al.
    2020: xnli, pawsx, udpos, panx, xquad, mlqa, tydiqa, bucc, tatoeba), plus Tatoeba for
    az lt pl ro uk, which XTREME's current download script adds.
``in_pretraining`` (function)
    Whether the language is among the 100 pretraining languages of XLM-R (CC-100;
    vendored in ``xfer_nb/data/xlmr_cc100_languages.txt`` from fairseq's XLM-R README),
    the tokenizer family of XLM-R and of the embedded multilingual-e5-small.
``offline``
    The sources in ``../shared/data`` that have the language (see ``OFFLINE_SOURCES``;
    ``tests/test_languages.py`` checks these lists against the files).

Resource tiers
--------------
``tier(code)`` groups Joshi classes into three tiers (``TIERS``): ``"low"`` = classes
0-2 (left-behinds, scraping-bys, hopefuls), ``"mid"`` = class 3 (rising stars),
``"high"`` = classes 4-5 (underdogs, winners). With this grouping Swahili, Yoruba,
Marathi, Burmese, Javanese, Malayalam, Telugu and all AmericasNLI languages are low;
Urdu, Tamil, Bengali, Thai, Indonesian, Hebrew are mid; Hindi, Korean, Turkish are high.

URIEL distances
---------------
``lang2vec==1.1.2`` ships URIEL's feature files (``lang2vec/data/*.npz``) but has no
``distance()`` function (later releases added one that reads precomputed matrices), and
its module ``lang2vec.lang2vec`` imports ``pkg_resources``, which current setuptools no
longer ships, so importing it fails here. This module therefore reads the ``.npz`` files
the package ships and computes distances itself, offline, following the definitions of
Littell et al. (2017), "URIEL and lang2vec", EACL:

``syntactic`` / ``phonological`` / ``inventory``
    cosine distance between the languages' ``syntax_knn`` / ``phonology_knn`` /
    ``inventory_knn`` vectors (URIEL's typological features with missing values predicted
    by k-nearest neighbours: 103, 28 and 158 binary features).
``genetic``
    1 - shared / max(len_a, len_b), where len is the number of Glottolog family-tree nodes
    a language sits under (``fam`` features) and shared the number they share; 1 for
    unrelated languages (and for a language URIEL gives no family, e.g. Basque) and 0 for
    a language with itself.
``geographic``
    great-circle distance divided by half the Earth's circumference (0 = same place,
    1 = antipodes). URIEL's ``geo`` features are exactly these normalised distances from
    the language to 299 fixed points; the language's coordinates are recovered from them
    by least squares (``coordinates()``).
``typological`` (the default)
    the mean of the syntactic, phonological and inventory distances.

All distances lie in [0, 1]. A code URIEL does not know raises ``KeyError``; a distance
that cannot be computed (a feature vector of zeros) is ``nan``.
"""
from __future__ import annotations

import functools
import importlib.util
import itertools
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

TIERS: tuple[str, ...] = ("low", "mid", "high")
DISTANCE_KINDS: tuple[str, ...] = (
    "typological", "syntactic", "phonological", "inventory", "genetic", "geographic")


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    iso3: str
    family: str
    genus: str | None
    script: str
    joshi: int
    joshi_estimated: bool = False
    laser: str | None = None
    xtreme_tasks: tuple[str, ...] = ()
    offline: tuple[str, ...] = ()

    @property
    def tier(self) -> str:
        return joshi_to_tier(self.joshi)


def joshi_to_tier(joshi_class: int) -> str:
    """Joshi class 0-2 -> "low", 3 -> "mid", 4-5 -> "high"."""
    if joshi_class not in range(6):
        raise ValueError(f"Joshi class must be 0-5, got {joshi_class!r}")
    return "low" if joshi_class <= 2 else "mid" if joshi_class == 3 else "high"


def _L(code, name, iso3, family, genus, script, joshi, laser=None, est=False):
    return Language(code, name, iso3, family, genus, script, joshi, est, laser)


IE, AA, NC, AN, ST = "Indo-European", "Afro-Asiatic", "Niger-Congo", "Austronesian", "Sino-Tibetan"

# fmt: off
_ROWS: tuple[Language, ...] = (
    # ---- XTREME's 40 languages ------------------------------------------------------
    #  code  name              iso3   family          genus                  script      joshi laser
    _L("af", "Afrikaans",      "afr", IE,             "Germanic",            "Latin",      3),
    _L("ar", "Arabic",         "arb", AA,             "Semitic",             "Arabic",     5, "ara"),
    _L("bg", "Bulgarian",      "bul", IE,             "Slavic",              "Cyrillic",   3, "bul"),
    _L("bn", "Bengali",        "ben", IE,             "Indic",               "Bengali",    3, "ben"),
    _L("de", "German",         "deu", IE,             "Germanic",            "Latin",      5, "deu"),
    _L("el", "Greek",          "ell", IE,             "Greek",               "Greek",      3, "ell"),
    _L("en", "English",        "eng", IE,             "Germanic",            "Latin",      5),
    _L("es", "Spanish",        "spa", IE,             "Romance",             "Latin",      5, "spa"),
    _L("et", "Estonian",       "est", "Uralic",       "Finnic",              "Latin",      3, "est"),
    _L("eu", "Basque",         "eus", "Basque",       "Basque",              "Latin",      4),
    _L("fa", "Persian",        "pes", IE,             "Iranian",             "Arabic",     4, "pes"),
    _L("fi", "Finnish",        "fin", "Uralic",       "Finnic",              "Latin",      4, "fin"),
    _L("fr", "French",         "fra", IE,             "Romance",             "Latin",      5, "fra"),
    _L("he", "Hebrew",         "heb", AA,             "Semitic",             "Hebrew",     3, "heb"),
    _L("hi", "Hindi",          "hin", IE,             "Indic",               "Devanagari", 4, "hin"),
    _L("hu", "Hungarian",      "hun", "Uralic",       "Ugric",               "Latin",      4, "hun"),
    _L("id", "Indonesian",     "ind", AN,             "Malayo-Sumbawan",     "Latin",      3, "ind"),
    _L("it", "Italian",        "ita", IE,             "Romance",             "Latin",      4, "ita"),
    _L("ja", "Japanese",       "jpn", "Japonic",      "Japanese",            "Japanese",   5, "jpn"),
    _L("jv", "Javanese",       "jav", AN,             "Javanese",            "Latin",      1, "jav"),
    _L("ka", "Georgian",       "kat", "Kartvelian",   "Kartvelian",          "Georgian",   3, "kat"),
    _L("kk", "Kazakh",         "kaz", "Turkic",       "Turkic",              "Cyrillic",   3),
    _L("ko", "Korean",         "kor", "Koreanic",     "Korean",              "Hangul",     4, "kor"),
    _L("ml", "Malayalam",      "mal", "Dravidian",    "Southern Dravidian",  "Malayalam",  1, "mal"),
    _L("mr", "Marathi",        "mar", IE,             "Indic",               "Devanagari", 2, "mar"),
    _L("ms", "Malay",          "zsm", AN,             "Malayo-Sumbawan",     "Latin",      3, "zsm"),
    _L("my", "Burmese",        "mya", ST,             "Burmese-Lolo",        "Myanmar",    1),
    _L("nl", "Dutch",          "nld", IE,             "Germanic",            "Latin",      4, "nld"),
    _L("pt", "Portuguese",     "por", IE,             "Romance",             "Latin",      4, "por"),
    _L("ru", "Russian",        "rus", IE,             "Slavic",              "Cyrillic",   4, "rus"),
    _L("sw", "Swahili",        "swh", NC,             "Bantoid",             "Latin",      2, "swh"),
    _L("ta", "Tamil",          "tam", "Dravidian",    "Southern Dravidian",  "Tamil",      3, "tam"),
    _L("te", "Telugu",         "tel", "Dravidian",    "South-Central Dravidian", "Telugu", 1),
    _L("th", "Thai",           "tha", "Kra-Dai",      "Kam-Tai",             "Thai",       3, "tha"),
    _L("tl", "Tagalog",        "tgl", AN,             "Greater Central Philippine", "Latin", 3, "tgl"),
    _L("tr", "Turkish",        "tur", "Turkic",       "Turkic",              "Latin",      4, "tur"),
    _L("ur", "Urdu",           "urd", IE,             "Indic",               "Arabic",     3, "urd"),
    _L("vi", "Vietnamese",     "vie", "Austroasiatic", "Vietic",             "Latin",      4, "vie"),
    _L("yo", "Yoruba",         "yor", NC,             "Defoid",              "Latin",      2),
    _L("zh", "Chinese",        "cmn", ST,             "Chinese",             "Han",        5, "cmn"),
    # ---- further languages with 2-letter codes in the offline data (XTREME-R, XCOPA) ----
    _L("az", "Azerbaijani",    "azj", "Turkic",       "Turkic",              "Latin",      1, "aze"),
    _L("lt", "Lithuanian",     "lit", IE,             "Baltic",              "Latin",      3, "lit"),
    _L("pl", "Polish",         "pol", IE,             "Slavic",              "Latin",      4, "pol"),
    _L("ro", "Romanian",       "ron", IE,             "Romance",             "Latin",      3, "ron"),
    _L("uk", "Ukrainian",      "ukr", IE,             "Slavic",              "Cyrillic",   3, "ukr"),
    _L("wo", "Wolof",          "wol", NC,             "Northern Atlantic",   "Latin",      2),
    _L("ht", "Haitian Creole", "hat", "Creole",       "French-based creole", "Latin",      2),
    _L("qu", "Quechua",        "quz", "Quechuan",     "Quechuan",            "Latin",      1),
    # ---- AmericasNLI (Asháninka's class estimated) ------------------------------------------
    _L("aym", "Aymara",        "ayr", "Aymaran",      "Aymaran",             "Latin",      1),
    _L("bzd", "Bribri",        "bzd", "Chibchan",     "Talamanca",           "Latin",      0),
    _L("cni", "Asháninka",     "cni", "Arawakan",     "Pre-Andine",          "Latin",      0, est=True),
    _L("gn", "Guarani",        "gug", "Tupian",       "Tupi-Guarani",        "Latin",      1),
    _L("hch", "Wixarika",      "hch", "Uto-Aztecan",  "Corachol",            "Latin",      0),
    _L("nah", "Nahuatl",       "nhe", "Uto-Aztecan",  "Aztecan",             "Latin",      1),
    _L("oto", "Otomi",         "ote", "Otomanguean",  "Otopamean",           "Latin",      0),
    _L("quy", "Ayacucho Quechua", "quy", "Quechuan",  "Quechuan",            "Latin",      1),
    _L("shp", "Shipibo-Konibo", "shp", "Panoan",      "Panoan",              "Latin",      0),
    _L("tar", "Raramuri",      "tar", "Uto-Aztecan",  "Tarahumaran",         "Latin",      0),
    # ---- languages found only in LASER's Tatoeba (key = LASER code) -----------------------
    _L("amh", "Amharic",       "amh", AA,             "Semitic",             "Ethiopic",   2, "amh"),
    _L("ang", "Old English",   "ang", IE,             "Germanic",            "Latin",      1, "ang"),
    _L("arq", "Algerian Arabic", "arq", AA,           "Semitic",             "Arabic",     0, "arq", est=True),
    _L("arz", "Egyptian Arabic", "arz", AA,           "Semitic",             "Arabic",     3, "arz"),
    _L("ast", "Asturian",      "ast", IE,             "Romance",             "Latin",      1, "ast"),
    _L("awa", "Awadhi",        "awa", IE,             "Indic",               "Devanagari", 0, "awa"),
    _L("bel", "Belarusian",    "bel", IE,             "Slavic",              "Cyrillic",   3, "bel"),
    _L("ber", "Berber",        "tzm", AA,             "Berber",              "Latin",      0, "ber"),
    _L("bos", "Bosnian",       "bos", IE,             "Slavic",              "Latin",      3, "bos"),
    _L("bre", "Breton",        "bre", IE,             "Celtic",              "Latin",      1, "bre"),
    _L("cat", "Catalan",       "cat", IE,             "Romance",             "Latin",      4, "cat"),
    _L("cbk", "Chavacano",     "cbk", "Creole",       "Spanish-based creole", "Latin",     1, "cbk"),
    _L("ceb", "Cebuano",       "ceb", AN,             "Greater Central Philippine", "Latin", 3, "ceb"),
    _L("ces", "Czech",         "ces", IE,             "Slavic",              "Latin",      4, "ces"),
    _L("cha", "Chamorro",      "cha", AN,             "Chamorro",            "Latin",      1, "cha"),
    _L("cor", "Cornish",       "cor", IE,             "Celtic",              "Latin",      1, "cor"),
    _L("csb", "Kashubian",     "csb", IE,             "Slavic",              "Latin",      1, "csb"),
    _L("cym", "Welsh",         "cym", IE,             "Celtic",              "Latin",      1, "cym"),
    _L("dan", "Danish",        "dan", IE,             "Germanic",            "Latin",      3, "dan"),
    _L("dsb", "Lower Sorbian", "dsb", IE,             "Slavic",              "Latin",      1, "dsb"),
    _L("dtp", "Kadazan Dusun", "dtp", AN,             "North Borneo",        "Latin",      0, "dtp", est=True),
    _L("epo", "Esperanto",     "epo", "Constructed",  None,                  "Latin",      1, "epo"),
    _L("fao", "Faroese",       "fao", IE,             "Germanic",            "Latin",      1, "fao"),
    _L("fry", "Western Frisian", "fry", IE,           "Germanic",            "Latin",      1, "fry"),
    _L("gla", "Scottish Gaelic", "gla", IE,           "Celtic",              "Latin",      1, "gla"),
    _L("gle", "Irish",         "gle", IE,             "Celtic",              "Latin",      2, "gle"),
    _L("glg", "Galician",      "glg", IE,             "Romance",             "Latin",      3, "glg"),
    _L("gsw", "Swiss German",  "gsw", IE,             "Germanic",            "Latin",      1, "gsw"),
    _L("hrv", "Croatian",      "hrv", IE,             "Slavic",              "Latin",      4, "hrv"),
    _L("hsb", "Upper Sorbian", "hsb", IE,             "Slavic",              "Latin",      1, "hsb"),
    _L("hye", "Armenian",      "hye", IE,             "Armenian",            "Armenian",   1, "hye"),
    _L("ido", "Ido",           "ido", "Constructed",  None,                  "Latin",      1, "ido"),
    _L("ile", "Interlingue",   "ile", "Constructed",  None,                  "Latin",      1, "ile"),
    _L("ina", "Interlingua",   "ina", "Constructed",  None,                  "Latin",      1, "ina"),
    _L("isl", "Icelandic",     "isl", IE,             "Germanic",            "Latin",      2, "isl"),
    _L("kab", "Kabyle",        "kab", AA,             "Berber",              "Latin",      1, "kab"),
    _L("khm", "Khmer",         "khm", "Austroasiatic", "Khmer",              "Khmer",      1, "khm"),
    _L("kur", "Kurdish (Kurmanji)", "kmr", IE,        "Iranian",             "Latin",      1, "kur"),
    _L("kzj", "Coastal Kadazan", "kzj", AN,           "North Borneo",        "Latin",      0, "kzj", est=True),
    _L("lat", "Latin",         "lat", IE,             "Italic",              "Latin",      3, "lat"),
    _L("lfn", "Lingua Franca Nova", "lfn", "Constructed", None,              "Latin",      1, "lfn", est=True),
    _L("lvs", "Latvian",       "lav", IE,             "Baltic",              "Latin",      3, "lvs"),
    _L("max", "North Moluccan Malay", "max", AN,      "Malayo-Sumbawan",     "Latin",      0, "max", est=True),
    _L("mhr", "Eastern Mari",  "mhr", "Uralic",       "Mari",                "Cyrillic",   1, "mhr"),
    _L("mkd", "Macedonian",    "mkd", IE,             "Slavic",              "Cyrillic",   1, "mkd"),
    _L("mon", "Mongolian",     "khk", "Mongolic",     "Mongolic",            "Cyrillic",   1, "mon"),
    _L("nds", "Low German",    "nds", IE,             "Germanic",            "Latin",      0, "nds"),
    _L("nno", "Norwegian Nynorsk", "nno", IE,         "Germanic",            "Latin",      1, "nno"),
    _L("nob", "Norwegian Bokmål", "nob", IE,          "Germanic",            "Latin",      1, "nob"),
    _L("nov", "Novial",        "nov", "Constructed",  None,                  "Latin",      1, "nov", est=True),
    _L("oci", "Occitan",       "oci", IE,             "Romance",             "Latin",      1, "oci"),
    _L("orv", "Old East Slavic", "orv", IE,           "Slavic",              "Cyrillic",   0, "orv", est=True),
    _L("pam", "Kapampangan",   "pam", AN,             "Central Luzon",       "Latin",      1, "pam"),
    _L("pms", "Piedmontese",   "pms", IE,             "Romance",             "Latin",      1, "pms"),
    _L("slk", "Slovak",        "slk", IE,             "Slavic",              "Latin",      3, "slk"),
    _L("slv", "Slovenian",     "slv", IE,             "Slavic",              "Latin",      3, "slv"),
    _L("sqi", "Albanian",      "als", IE,             "Albanian",            "Latin",      1, "sqi"),
    _L("srp", "Serbian",       "srp", IE,             "Slavic",              "Latin",      4, "srp"),
    _L("swe", "Swedish",       "swe", IE,             "Germanic",            "Latin",      4, "swe"),
    _L("swg", "Swabian",       "swg", IE,             "Germanic",            "Latin",      0, "swg", est=True),
    _L("tat", "Tatar",         "tat", "Turkic",       "Turkic",              "Cyrillic",   1, "tat"),
    _L("tuk", "Turkmen",       "tuk", "Turkic",       "Turkic",              "Latin",      1, "tuk"),
    _L("tzl", "Talossan",      "tzl", "Constructed",  None,                  "Latin",      0, "tzl", est=True),
    _L("uig", "Uyghur",        "uig", "Turkic",       "Turkic",              "Arabic",     1, "uig"),
    _L("uzb", "Uzbek",         "uzn", "Turkic",       "Turkic",              "Latin",      3, "uzb"),
    _L("war", "Waray",         "war", AN,             "Greater Central Philippine", "Latin", 1, "war"),
    _L("wuu", "Wu Chinese",    "wuu", ST,             "Chinese",             "Han",        1, "wuu"),
    _L("xho", "Xhosa",         "xho", NC,             "Bantoid",             "Latin",      2, "xho"),
    _L("yid", "Yiddish",       "ydd", IE,             "Germanic",            "Hebrew",     1, "yid"),
    _L("yue", "Cantonese",     "yue", ST,             "Chinese",             "Han",        1, "yue"),
)
# fmt: on

# XTREME's task language lists (Hu et al. 2020, Table 1 / the download script).
XTREME_TASKS: dict[str, tuple[str, ...]] = {
    "xnli": tuple("en fr es de el bg ru tr ar vi th zh hi sw ur".split()),
    "pawsx": tuple("en fr es de zh ja ko".split()),
    "udpos": tuple(("af ar bg de el en es et eu fa fi fr he hi hu id it ja kk ko mr nl pt ru "
                    "ta te th tl tr ur vi yo zh").split()),
    "panx": tuple(("af ar bg bn de el en es et eu fa fi fr he hi hu id it ja jv ka kk ko ml "
                   "mr ms my nl pt ru sw ta te th tl tr ur vi yo zh").split()),
    "xquad": tuple("en es de el ru tr ar vi th zh hi".split()),
    "mlqa": tuple("en es de ar hi vi zh".split()),
    "tydiqa": tuple("en ar bn fi id ko ru sw te".split()),
    "bucc": tuple("en de fr ru zh".split()),
    # the original 36 (+ English) and az lt pl ro uk added by XTREME's current script
    "tatoeba": tuple(("en af ar bg bn de el es et eu fa fi fr he hi hu id it ja jv ka kk ko "
                      "ml mr nl pt ru sw ta te th tl tr ur vi zh az lt pl ro uk").split()),
}

_LASER_CODES = (
    "amh ang ara arq arz ast awa aze bel ben ber bos bre bul cat cbk ceb ces cha cmn cor csb "
    "cym dan deu dsb dtp ell epo est fao fin fra fry gla gle glg gsw heb hin hrv hsb hun hye "
    "ido ile ina ind isl ita jav jpn kab kat khm kor kur kzj lat lfn lit lvs mal mar max mhr "
    "mkd mon nds nld nno nob nov oci orv pam pes pms pol por ron rus slk slv spa sqi srp swe "
    "swg swh tam tat tgl tha tuk tur tzl uig ukr urd uzb vie war wuu xho yid yue zsm").split()

# Which languages each source in ../shared/data has (SOURCES.md). Codes are table codes.
OFFLINE_SOURCES: dict[str, tuple[str, ...]] = {
    "xnli": XTREME_TASKS["xnli"],
    "myxnli": ("sw", "ur", "my"),
    "americasnli": ("aym", "bzd", "cni", "gn", "hch", "nah", "oto", "quy", "shp", "tar"),
    "pawsx": ("de", "en", "es", "fr", "ja", "ko", "zh"),
    "udpos": tuple(("ar bg el en es et fa fi fr he hi hu id it ja ko lt mr nl pl pt ro ru ta th "
                    "tl tr uk ur vi wo yo zh").split()),
    "panx": tuple("en bn hi jv ml mr ms my sw ta tl ur yo".split()),
    "xquad": tuple("ar de el en es hi ro ru th tr vi zh".split()),
    "mlqa": tuple("ar de en es hi vi zh".split()),
    "tydiqa": ("en", "ko", "sw"),
    "bucc": ("en", "zh"),
    "tatoeba": tuple(("ar az bg bn de el es et fa fi fr he hi hu id it ja jv ka ko lt ml mr nl "
                      "pl pt ro ru sw ta th tl tr uk ur vi zh").split()),
    "laser-tatoeba": (),  # filled below from _LASER_CODES (English is the pivot side)
    "xcopa": tuple("en et ht id it qu sw ta th tr vi zh".split()),
    "anli": ("en",),
    "siqa": ("en",),
    "cosmosqa": ("en",),
}


def _build() -> tuple[Language, ...]:
    by_laser = {r.laser: r.code for r in _ROWS if r.laser}
    missing = sorted(set(_LASER_CODES) - set(by_laser))
    if missing:  # pragma: no cover - guards the table itself
        raise AssertionError(f"LASER codes without a row: {missing}")
    OFFLINE_SOURCES["laser-tatoeba"] = tuple(sorted(by_laser[c] for c in _LASER_CODES))
    rows = []
    for r in _ROWS:
        xt = tuple(t for t, langs in XTREME_TASKS.items() if r.code in langs)
        off = tuple(s for s, langs in OFFLINE_SOURCES.items() if r.code in langs)
        rows.append(replace(r, xtreme_tasks=xt, offline=off))
    return tuple(rows)


LANGUAGES: tuple[Language, ...] = _build()
_BY_CODE: dict[str, Language] = {r.code: r for r in LANGUAGES}
# Other names a language may be asked for by: its URIEL code and its LASER code.
_ALIASES: dict[str, str] = {}
for _r in LANGUAGES:
    for _a in (_r.iso3, _r.laser):
        if _a and _a not in _BY_CODE:
            _ALIASES.setdefault(_a, _r.code)
# ... and the 2-letter code the data layer gives LASER's Tatoeba languages (amh -> am).
from xfer_nb.tasks.local import LASER_TO_ISO as _LASER_TO_ISO  # noqa: E402
for _laser, _iso in _LASER_TO_ISO.items():
    _row = _laser if _laser in _BY_CODE else _ALIASES.get(_laser)
    if _iso not in _BY_CODE and _row:
        _ALIASES.setdefault(_iso, _row)
# xnli-extension (the local mnli pool) writes Norwegian as ISO 639-1 "no": its text is Bokmål.
_ALIASES.setdefault("no", "nob")

XTREME_LANGUAGES: tuple[str, ...] = XTREME_TASKS["panx"]  # PAN-X covers all 40
XNLI_LANGUAGES: tuple[str, ...] = XTREME_TASKS["xnli"]

# ----------------------------------------------------------------------------------------
# Vendored reference lists (xfer_nb/data): Joshi et al.'s classes, XLM-R's languages
# ----------------------------------------------------------------------------------------

DATA_DIR = Path(__file__).resolve().parent / "data"

# The name of a language in Joshi et al.'s lang2tax.txt where it is not our name in lower
# case. Languages with an estimated class have none.
JOSHI_NAMES: dict[str, str] = {
    "zh": "mandarin", "ht": "haitian", "quy": "quechua", "hch": "huichol", "oto": "otomí",
    "tar": "tarahumara", "ang": "anglo-saxon", "fry": "west frisian", "gsw": "alemannic",
    "mhr": "meadow mari", "nob": "norwegian (bokmål)", "nno": "norwegian (nynorsk)", "wuu": "wu",
}

# The name in XLM-R's list where it is not our name.
XLMR_NAMES: dict[str, str] = {"zh": "Chinese (Simplified)", "tl": "Filipino", "nob": "Norwegian"}


@functools.lru_cache(maxsize=None)
def published_joshi() -> dict[str, int]:
    """lang2tax.txt name -> Joshi class, read from the vendored list."""
    out: dict[str, int] = {}
    for line in (DATA_DIR / "joshi2020_lang2tax.tsv").read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, cls, _code = line.split("\t")
        out[name] = int(cls)
    return out


def joshi_name(code: str) -> str | None:
    """The language's name in Joshi et al.'s list, or None where its class is estimated."""
    row = info(code)
    if row.joshi_estimated:
        return None
    return JOSHI_NAMES.get(row.code, row.name.lower())


@functools.lru_cache(maxsize=None)
def xlmr_languages() -> tuple[str, ...]:
    """XLM-R's 100 pretraining languages (CC-100), as named in fairseq's XLM-R README."""
    text = (DATA_DIR / "xlmr_cc100_languages.txt").read_text(encoding="utf-8")
    return tuple(l.strip() for l in text.splitlines() if l.strip() and not l.startswith("#"))


def in_pretraining(code: str) -> bool:
    """Whether XLM-R was pretrained on the language (its CC-100 list). KeyError for a code
    outside the table."""
    row = info(code)
    return XLMR_NAMES.get(row.code, row.name) in set(xlmr_languages())



def normalize(code: str) -> str:
    """The table code for `code` (a table code, a URIEL ISO 639-3 code or a LASER code)."""
    c = str(code).strip()
    if c in _BY_CODE:
        return c
    if c.lower() in _BY_CODE:
        return c.lower()
    if c.lower() in _ALIASES:
        return _ALIASES[c.lower()]
    raise KeyError(f"unknown language code {code!r}; known codes: {' '.join(sorted(_BY_CODE))}")


def info(code: str) -> Language:
    """The table row of a language (by table code, URIEL code or LASER code).

    Unknown code -> KeyError listing the known codes."""
    return _BY_CODE[normalize(code)]


def tier(code: str) -> str:
    """Resource tier ("low", "mid", "high") of a language: Joshi class 0-2 / 3 / 4-5."""
    return info(code).tier


def codes(*, tier: str | None = None, offline: str | None = None,
          xtreme_task: str | None = None) -> tuple[str, ...]:
    """Table codes, optionally only one tier, only those an offline source has
    (a key of ``OFFLINE_SOURCES``) and/or only those of an XTREME task's published list."""
    if tier is not None and tier not in TIERS:
        raise ValueError(f"tier must be one of {TIERS}, got {tier!r}")
    if offline is not None and offline not in OFFLINE_SOURCES:
        raise KeyError(f"unknown offline source {offline!r}; known: {sorted(OFFLINE_SOURCES)}")
    if xtreme_task is not None and xtreme_task not in XTREME_TASKS:
        raise KeyError(f"unknown XTREME task {xtreme_task!r}; known: {sorted(XTREME_TASKS)}")
    return tuple(r.code for r in LANGUAGES
                 if (tier is None or r.tier == tier)
                 and (offline is None or offline in r.offline)
                 and (xtreme_task is None or xtreme_task in r.xtreme_tasks))


def estimated_joshi() -> tuple[str, ...]:
    """Codes whose Joshi class is an estimate, not a published class."""
    return tuple(r.code for r in LANGUAGES if r.joshi_estimated)


def table():
    """The table as a pandas DataFrame (one row per language, tier included)."""
    import pandas as pd
    rows = []
    for r in LANGUAGES:
        d = {f: getattr(r, f) for f in r.__dataclass_fields__}
        d["tier"] = r.tier
        d["xtreme_tasks"] = ",".join(r.xtreme_tasks)
        d["offline"] = ",".join(r.offline)
        rows.append(d)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------
# URIEL features (read from the files lang2vec ships)
# ----------------------------------------------------------------------------------------

def _lang2vec_data_dir() -> Path:
    spec = importlib.util.find_spec("lang2vec")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("lang2vec is not installed (pip install lang2vec==1.1.2)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not (path / "feature_predictions.npz").is_file():
        raise FileNotFoundError(f"lang2vec's URIEL feature files are missing under {path}")
    return path


@functools.lru_cache(maxsize=None)
def _npz(name: str) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
    """(language -> row index, feature names, data[lang, feat]) of one URIEL file."""
    with np.load(_lang2vec_data_dir() / name) as z:
        langs = {str(l): i for i, l in enumerate(z["langs"])}
        feats = np.array([str(f) for f in z["feats"]])
        data = z["data"][:, :, 0]
    # family features are 0/1 over 3,718 tree nodes: keep them as booleans (30 MB, not 240)
    data = data == 1.0 if name == "family_features.npz" else np.asarray(data, dtype=np.float64)
    return langs, feats, data


_FEATURE_SETS = {  # name -> (file, feature-name prefix)
    "syntax_knn": ("feature_predictions.npz", "S_"),
    "phonology_knn": ("feature_predictions.npz", "P_"),
    "inventory_knn": ("feature_predictions.npz", "INV_"),
    "fam": ("family_features.npz", "F_"),
    "geo": ("geocoord_features.npz", "GC_"),
}


def uriel_code(code: str) -> str:
    """The ISO 639-3 code used for URIEL: the table's ``iso3``, or `code` itself if it is
    not in the table but URIEL knows it. KeyError otherwise."""
    try:
        return info(code).iso3
    except KeyError:
        langs, _, _ = _npz("family_features.npz")
        if str(code) in langs:
            return str(code)
        raise KeyError(f"{code!r} is neither in the language table nor a URIEL ISO 639-3 code; "
                       f"known table codes: {' '.join(sorted(_BY_CODE))}") from None


def features(code: str, feature_set: str = "syntax_knn") -> np.ndarray:
    """One URIEL feature vector (values in [0, 1]; -1 marks a missing value)."""
    if feature_set not in _FEATURE_SETS:
        raise KeyError(f"unknown feature set {feature_set!r}; known: {sorted(_FEATURE_SETS)}")
    fname, prefix = _FEATURE_SETS[feature_set]
    langs, feats, data = _npz(fname)
    iso = uriel_code(code)
    if iso not in langs:
        raise KeyError(f"URIEL has no {feature_set} features for {code!r} ({iso})")
    cols = np.char.startswith(feats.astype(str), prefix)
    return np.asarray(data[langs[iso], cols], dtype=np.float64)


def _cosine_distance(u: np.ndarray, v: np.ndarray) -> float:
    if np.any(u < 0) or np.any(v < 0):
        return math.nan  # missing values: URIEL knn sets have none, but stay safe
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return math.nan
    return float(min(1.0, max(0.0, 1.0 - float(u @ v) / (nu * nv))))


def _great_circle(lat1, lon1, lat2, lon2):
    """Central angle in radians between points given in degrees (numpy broadcasting)."""
    la1, lo1, la2, lo2 = map(np.radians, (lat1, lon1, lat2, lon2))
    h = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
    return 2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


@functools.lru_cache(maxsize=None)
def _geo_points() -> np.ndarray:
    _, feats, _ = _npz("geocoord_features.npz")
    return np.array([[float(x) for x in f[3:].split("_")] for f in feats])  # "GC_lat_lon"


def _unit(lat, lon) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


@functools.lru_cache(maxsize=None)
def _grid(step: float) -> tuple[np.ndarray, np.ndarray]:
    lat, lon = np.meshgrid(np.arange(-90.0, 90.0 + 1e-9, step), np.arange(-180.0, 180.0, step),
                           indexing="ij")
    latlon = np.stack([lat.ravel(), lon.ravel()], axis=1)
    pts = _geo_points()
    cos = _unit(latlon[:, 0], latlon[:, 1]) @ _unit(pts[:, 0], pts[:, 1]).T
    return latlon, np.arccos(np.clip(cos, -1.0, 1.0))  # central angles grid x points


@functools.lru_cache(maxsize=None)
def _coordinates_iso(iso: str) -> tuple[float, float]:
    from scipy.optimize import least_squares

    target = features(iso, "geo") * math.pi  # central angles to the 299 fixed points
    pts = _geo_points()
    latlon, ang = _grid(3.0)  # best point of a 3-degree grid, then least squares from there
    x0 = latlon[int(np.argmin(((ang - target) ** 2).sum(axis=1)))]
    res = least_squares(lambda x: _great_circle(x[0], x[1], pts[:, 0], pts[:, 1]) - target, x0,
                        bounds=([-90.0, -540.0], [90.0, 540.0]))
    return float(res.x[0]), float((res.x[1] + 180.0) % 360.0 - 180.0)


def coordinates(code: str) -> tuple[float, float]:
    """(latitude, longitude) of a language, recovered from URIEL's geo features."""
    return _coordinates_iso(uriel_code(code))


@functools.lru_cache(maxsize=None)
def _family_nodes(iso: str) -> frozenset[str]:
    langs, feats, data = _npz("family_features.npz")
    if iso not in langs:
        raise KeyError(f"URIEL has no family features for {iso!r}")
    return frozenset(feats[data[langs[iso]]].tolist())


@functools.lru_cache(maxsize=None)
def _distance_iso(a: str, b: str, kind: str) -> float:
    if kind == "typological":
        parts = [_distance_iso(a, b, k) for k in ("syntactic", "phonological", "inventory")]
        return float(np.mean(parts))
    if a == b:
        return 0.0
    if kind in ("syntactic", "phonological", "inventory"):
        fs = {"syntactic": "syntax_knn", "phonological": "phonology_knn",
              "inventory": "inventory_knn"}[kind]
        return _cosine_distance(features(a, fs), features(b, fs))
    if kind == "genetic":
        na, nb = _family_nodes(a), _family_nodes(b)
        longest = max(len(na), len(nb))
        return 1.0 if longest == 0 else 1.0 - len(na & nb) / longest
    if kind == "geographic":
        (la1, lo1), (la2, lo2) = _coordinates_iso(a), _coordinates_iso(b)
        return float(_great_circle(la1, lo1, la2, lo2) / math.pi)
    raise ValueError(f"kind must be one of {DISTANCE_KINDS}, got {kind!r}")


def distance(a: str, b: str, kind: str = "typological") -> float:
    """URIEL distance in [0, 1] between two languages (see the module docstring).

    `a`, `b`: table codes (or URIEL/LASER codes). `kind`: one of ``DISTANCE_KINDS``.
    Symmetric; cached. KeyError for a code URIEL lacks; nan if a vector is all zeros."""
    if kind not in DISTANCE_KINDS:
        raise ValueError(f"kind must be one of {DISTANCE_KINDS}, got {kind!r}")
    x, y = sorted((uriel_code(a), uriel_code(b)))
    return _distance_iso(x, y, kind)


def _split(langs: str | Iterable[str]) -> list[str]:
    if isinstance(langs, str):
        langs = [s for s in langs.replace("+", ",").split(",") if s.strip()]
    return [s.strip() for s in langs]


def distance_to_set(lang: str, langs: str | Iterable[str], kind: str = "typological",
                    reduce: str = "min") -> float:
    """Distance from an evaluation language to a set of (intermediate) languages.

    `langs` may be a list or a comma-joined string ("en,fr,de"). A language that is in the
    set is *seen* and has distance 0 whatever `reduce` is; otherwise `reduce` is "min"
    (distance to the nearest language of the set, the default) or "mean"."""
    members = _split(langs)
    if not members:
        raise ValueError("the language set is empty")
    if reduce not in ("min", "mean"):
        raise ValueError(f"reduce must be 'min' or 'mean', got {reduce!r}")
    target = uriel_code(lang)
    if target in {uriel_code(m) for m in members}:
        return 0.0
    ds = [distance(lang, m, kind) for m in members]
    return float(np.nanmin(ds) if reduce == "min" else np.nanmean(ds))


def diversity(langs: str | Iterable[str], kind: str = "typological") -> dict:
    """How diverse a language set is: number of languages, families and scripts, and the
    mean pairwise URIEL distance (nan for a single language)."""
    members = list(dict.fromkeys(normalize(m) for m in _split(langs)))
    rows = [info(m) for m in members]
    pairs = [distance(a, b, kind) for a, b in itertools.combinations(members, 2)]
    return {
        "n_languages": len(rows),
        "n_families": len({r.family for r in rows}),
        "n_scripts": len({r.script for r in rows}),
        "mean_pairwise_distance": float(np.mean(pairs)) if pairs else math.nan,
    }


def _ranked(to: str, candidates: Sequence[str] | None, kind: str) -> list[tuple[float, str]]:
    pool = XNLI_LANGUAGES if candidates is None else tuple(_split(candidates))
    to_code = normalize(to)
    ranked = []
    for c in dict.fromkeys(normalize(x) for x in pool):
        if c == to_code:
            continue
        d = distance(to_code, c, kind)
        if not math.isnan(d):
            ranked.append((d, c))
    return sorted(ranked)


def closest(to: str = "en", candidates: Sequence[str] | None = None, k: int = 3,
            kind: str = "typological") -> list[str]:
    """The `k` candidates nearest to `to` (default pool: XNLI's 15 languages), nearest
    first; `to` itself is never returned. Ties break by code."""
    return [c for _, c in _ranked(to, candidates, kind)[:k]]


def farthest(to: str = "en", candidates: Sequence[str] | None = None, k: int = 3,
             kind: str = "typological") -> list[str]:
    """The `k` candidates farthest from `to` (default pool: XNLI's 15 languages),
    farthest first."""
    ranked = _ranked(to, candidates, kind)
    return [c for _, c in sorted(ranked, key=lambda t: (-t[0], t[1]))[:k]]


def language_set(name: str, candidates: Sequence[str] | None = None,
                 kind: str = "typological") -> tuple[str, ...]:
    """Resolve a language-set name into its languages.

    "en" or "en,fr,de" (explicit lists); "<pivot>+close<k>" = pivot plus its k nearest
    candidates; "<pivot>+far<k>" = pivot plus its k farthest (default pool: XNLI's
    languages), e.g. ``language_set("en+close3")``."""
    import re

    m = re.fullmatch(r"\s*([A-Za-z]+)\s*\+\s*(close|far)(\d+)\s*", name)
    if m:
        pivot, how, k = normalize(m.group(1)), m.group(2), int(m.group(3))
        pick = closest if how == "close" else farthest
        return (pivot, *pick(pivot, candidates, k, kind))
    return tuple(dict.fromkeys(normalize(c) for c in _split(name)))


def annotate(df, language_col: str = "language", set_col: str = "intermediate_languages",
             kind: str = "typological", reduce: str = "min"):
    """Return a copy of a results table with ``tier``, ``seen`` and ``distance`` filled in
    where those columns are missing: tier from the table (nan for unknown codes); seen =
    the language is among the comma-joined `set_col` codes (False where that is empty, as
    for the baseline); distance = ``distance_to_set`` to those codes (nan if empty or if
    URIEL lacks a code)."""
    out = df.copy()
    if "tier" not in out.columns:
        out["tier"] = [_BY_CODE[_ALIASES.get(c, c)].tier if _ALIASES.get(c, c) in _BY_CODE
                       else math.nan for c in out[language_col]]
    if set_col in out.columns:
        pairs = list(zip(out[language_col], out[set_col].fillna("").astype(str)))
        cache: dict = {}
        if "seen" not in out.columns:
            out["seen"] = [bool(members.strip()) and _seen(lang, members) for lang, members in pairs]
        if "distance" not in out.columns:
            def dist(lang, members):
                if (lang, members) not in cache:
                    try:
                        cache[lang, members] = distance_to_set(lang, members, kind, reduce) \
                            if members.strip() else math.nan
                    except KeyError:  # a code URIEL does not know
                        cache[lang, members] = math.nan
                return cache[lang, members]
            out["distance"] = [dist(lang, members) for lang, members in pairs]
    return out


def _seen(lang: str, members: str) -> bool:
    try:
        return uriel_code(lang) in {uriel_code(m) for m in _split(members)}
    except KeyError:
        return lang in _split(members)
