"""Faults a simulated meter can show, as a real device shows them; set from the plant file or at run time.

Lasting faults stay until cleared (DELETE /faults), among them `waste`, which makes a meter use `factor` times
its energy (a compressed-air leak: 1.15); one-shot faults (counter_reset, rollover, replacement)
act once on the meter's counter register and are not kept; read-limited faults (transient_zero, garbage_high)
stay for `reads` reads of the counter register and then clear themselves.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FaultKind(StrEnum):
    OFFLINE = "offline"            # Modbus TCP: exception 0x0B from the gateway (or silence); RTU: silence;
                                   # OPC UA: the meter's values turn BadNoCommunication
    SLOW = "slow"                  # Modbus: the answer comes after delay_ms
    TIMEOUT = "timeout"            # Modbus: the request is read and never answered
    STUCK = "stuck"                # every value of the meter freezes (the counter catches up when cleared)
    COUNTER_RESET = "counter_reset"  # one-shot: the counter register restarts from zero
    ROLLOVER = "rollover"          # one-shot: the counter register jumps to counts_before_wrap below its maximum
    EXCEPTION = "exception"        # Modbus: every request answered with exception `code`
    NAN = "nan"                    # float registers read NaN, integer registers the "not available" pattern
    GARBAGE = "garbage"            # registers hold random words
    BAD_STATUS = "bad_status"      # OPC UA: the meter's values carry status `status`
    CLOCK_JUMP = "clock_jump"      # OPC UA: source timestamps jump by `seconds`
    TRANSIENT_ZERO = "transient_zero"  # the counter register reads 0 for `reads` reads, then the true counter again
    GARBAGE_HIGH = "garbage_high"  # the counter register reads `counts` above the truth for `reads` reads
    REPLACEMENT = "replacement"    # one-shot: a new meter: the register continues from `counter_start`
    WASTE = "waste"                # the meter's rate is `factor` times what it would be (a compressed-air leak: 1.15)


ONE_SHOT = frozenset({FaultKind.COUNTER_RESET, FaultKind.ROLLOVER, FaultKind.REPLACEMENT})
READ_LIMITED = frozenset({FaultKind.TRANSIENT_ZERO, FaultKind.GARBAGE_HIGH})  # clear themselves after `reads`
MODBUS_ONLY = frozenset({FaultKind.SLOW, FaultKind.TIMEOUT, FaultKind.EXCEPTION, FaultKind.NAN, FaultKind.GARBAGE})
OPCUA_ONLY = frozenset({FaultKind.BAD_STATUS, FaultKind.CLOCK_JUMP})

MODBUS_EXCEPTION_CODES = frozenset({1, 2, 3, 4, 5, 6, 8, 10, 11})


class FaultSpec(BaseModel):
    """One fault with its parameters, as written in the plant file or POSTed to /faults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fault: FaultKind
    delay_ms: float = Field(default=2000.0, ge=0, le=600_000, description="slow: answer delay")
    code: int = Field(default=4, description="exception: Modbus exception code (4 = server device failure)")
    counts_before_wrap: int = Field(default=100, ge=1, description="rollover: counts below the register maximum")
    status: str = Field(default="BadSensorFailure", description="bad_status: an OPC UA StatusCodes name")
    seconds: float = Field(default=3600.0, allow_inf_nan=False, description="clock_jump: offset of source times")
    reads: int = Field(default=1, ge=1, le=1_000_000,
                       description="transient_zero, garbage_high: reads of the counter register the fault lasts")
    counts: int | None = Field(default=None, ge=1, le=2**62,
                               description="garbage_high: counts above the true counter (default 2**40, or 3/8 of "
                                           "the range of a register that wraps)")
    factor: float = Field(default=1.15, ge=1, le=10, allow_inf_nan=False,
                          description="waste: the rate multiplied by this (energy wasted: factor - 1 of it)")
    counter_start: int | None = Field(default=None, ge=0, le=2**62,
                                      description="replacement: the new meter's register, in counts (required)")

    @model_validator(mode="after")
    def _params(self) -> FaultSpec:
        if self.fault is FaultKind.EXCEPTION and self.code not in MODBUS_EXCEPTION_CODES:
            raise ValueError(f"code {self.code} is not a Modbus exception code {sorted(MODBUS_EXCEPTION_CODES)}")
        if self.fault is FaultKind.BAD_STATUS:
            from asyncua.ua.status_codes import StatusCodes

            value = getattr(StatusCodes, self.status, None)
            if not isinstance(value, int) or not self.status.startswith(("Bad", "Uncertain")):
                raise ValueError(f"status {self.status!r} is not an OPC UA Bad*/Uncertain* StatusCodes name")
        if self.fault is FaultKind.REPLACEMENT and self.counter_start is None:
            raise ValueError("replacement needs counter_start: the new meter's register, in counts")
        return self


class ActiveFaults:
    """The lasting faults of one meter, keyed by kind (setting one kind twice replaces its parameters)."""

    def __init__(self) -> None:
        self._faults: dict[FaultKind, FaultSpec] = {}

    def set(self, spec: FaultSpec) -> None:
        if spec.fault in ONE_SHOT:
            raise ValueError(f"{spec.fault} is one-shot and is applied, not kept")
        self._faults[spec.fault] = spec

    def clear(self, kind: FaultKind | None = None) -> None:
        if kind is None:
            self._faults.clear()
        else:
            self._faults.pop(kind, None)

    def get(self, kind: FaultKind) -> FaultSpec | None:
        return self._faults.get(kind)

    def __contains__(self, kind: object) -> bool:
        return kind in self._faults

    def as_list(self) -> list[dict[str, object]]:
        # `factor` only where it means something (waste): the other faults' listings stay as they were
        return [spec.model_dump(mode="json", exclude=None if spec.fault is FaultKind.WASTE else {"factor"})
                for spec in self._faults.values()]
