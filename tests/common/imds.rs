//! A faithful IMDSv2 server for tests (filled in by the deploy work).
