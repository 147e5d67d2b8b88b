"""The procedure files (one YAML file per incident type) and their loader; the model is core.procedures."""

from storage.procedures.load import SHIPPED_DIR, ProcedureFileError, load_procedures, parse_procedure_text

__all__ = ["SHIPPED_DIR", "ProcedureFileError", "load_procedures", "parse_procedure_text"]
