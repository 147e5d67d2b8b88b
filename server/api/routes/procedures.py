"""The company's procedures as loaded (storage/procedures, or PATROL_PROCEDURES_DIR): what each
incident type's ticket carries, in both languages. Roles: all (a guard reads the steps too)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from core.procedures import MANUAL_PROCEDURES, PROCEDURE_FOR_ALARM, Procedure
from server.api.deps import EVERYONE
from server.api.incident_schemas import PathCode, ProcedurePublic
from server.api.routes.tickets import EnvDep

router = APIRouter(prefix="/api/v1/procedures", tags=["procedures"], dependencies=[EVERYONE])


def _public(p: Procedure) -> ProcedurePublic:
    data = p.model_dump(exclude={"version"})
    return ProcedurePublic.model_validate(
        data
        | {
            "manual": p.code in MANUAL_PROCEDURES,
            "alarm_types": sorted(a for a, code in PROCEDURE_FOR_ALARM.items() if code == p.code),
        }
    )


@router.get("", response_model=list[ProcedurePublic], summary="Every procedure with its steps. Roles: all")
def list_procedures(env: EnvDep) -> list[ProcedurePublic]:
    return [_public(env.procedures[code]) for code in sorted(env.procedures)]


@router.get("/{code}", response_model=ProcedurePublic, summary="One procedure with its steps. Roles: all")
def get_procedure(env: EnvDep, code: PathCode) -> ProcedurePublic:
    procedure = env.procedures.get(code)
    if procedure is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no procedure {code!r}: known are {', '.join(sorted(env.procedures))}"
        )
    return _public(procedure)
