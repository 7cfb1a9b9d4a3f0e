//! The full tier, serving: the real binary (debug build) on loopback against the real test
//! backends (`scripts/test-env.sh up`): every page, every probe and its failures, the CLI, the
//! config sources, the ALB sign-in, ECS and the fleet behind a balancer. One binary, one harness
//! (tests/harness/), one module per concern.

mod alb_auth;
mod boot;
mod check_cli;
mod dashboard;
mod ecs;
mod fleet;
mod healthcheck;
mod iam_auth;
mod last_good;
mod least_privilege;
mod logs;
mod pages;
mod probe_aws;
mod probe_edges;
mod probe_more;
mod probe_mysql;
mod probe_redis;
mod secret_refs;
mod tls_state;
