//! The full tier, deployment: user-data on a fake instance (IMDSv2), the CloudFormation stack on
//! the emulator, the ECS task definition and the install-and-verify path.

mod cloudformation;
mod deploy;
mod install_verify;
mod task_definition;
