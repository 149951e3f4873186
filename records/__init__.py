"""The API's own database (rules, alerts, ledger, instruments, factor sets, key revocations, audit log): opening and
migrations (`records.db`, `records.schema`) and one repository per aggregate, the only place its SQL is written.
The API reads and writes through it; SCADA reads through the same repositories (`records.db.ReadOnlyDb`)."""
