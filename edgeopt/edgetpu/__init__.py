"""Edge TPU knowledge: which ops edgetpu_compiler 16 maps (rules, versions), our prediction of
its result (analyse), its log format both ways (log), and running it when installed (compiler)."""

from edgeopt.edgetpu.analyse import DEFAULT_CACHE_BYTES, EdgeTpuReport, OpVerdict, analyse
from edgeopt.edgetpu.log import CompilerLog, analysis_json, parse_log, render, summary

__all__ = ["DEFAULT_CACHE_BYTES", "CompilerLog", "EdgeTpuReport", "OpVerdict", "analyse", "analysis_json", "parse_log",
           "render", "summary"]
