# Bakes an Amazon Linux 2023 AMI (x86_64 or arm64) with the static suaicloudapp binary, checked
# against the release's SHA256SUMS on the build instance, and its systemd unit.
# Build with a modern packer from this directory, after `make dist` at the repository root:
#   packer init . && packer build -var 'ssh_source_cidrs=["<your IP>/32"]' .   (-var arch=arm64: Graviton)
# (see README.md; plugins.pkr.hcl pins the Amazon plugin).

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "AWS region to build the AMI in."
}

variable "ami_name_prefix" {
  type        = string
  default     = "suaicloudapp"
  description = "AMI names are <prefix>-<UTC timestamp>."
}

variable "arch" {
  type        = string
  default     = "x86_64"
  description = "x86_64 (t3.micro build instance) or arm64 (Graviton, t4g.micro): the AMI's architecture and the binary baked into it."
}

variable "version" {
  type        = string
  default     = ""
  description = "Release version of the binary (names the dist/ files); empty: the [package] version in ../Cargo.toml."
}

variable "binary_path" {
  type        = string
  default     = ""
  description = "The static binary for var.arch; empty: ../dist/suaicloudapp-<version>-<target> (make dist). Absolute, or relative to this directory."
}

variable "sha256sums_path" {
  type        = string
  default     = "../dist/SHA256SUMS"
  description = "The release's SHA256SUMS (make dist, or the release assets): the binary must match its line. Absolute, or relative to this directory."
}

variable "ssh_source_cidrs" {
  type        = list(string)
  description = "Where packer connects from: the only sources the build instance's temporary security group lets reach SSH (port 22), e.g. [\"203.0.113.7/32\"] (your address: curl https://checkip.amazonaws.com) or the builder's VPC range. Required; 0.0.0.0/0 and ::/0 are refused."
  validation {
    condition     = length(var.ssh_source_cidrs) > 0 && length([for c in var.ssh_source_cidrs : c if !can(cidrhost(c, 0)) || contains(["0.0.0.0/0", "::/0"], c)]) == 0
    error_message = "The ssh_source_cidrs must be one or more CIDR blocks naming the builder's address (not 0.0.0.0/0 or ::/0)."
  }
}

variable "unit_path" {
  type        = string
  default     = "../systemd/suaicloudapp.service"
  description = "The systemd unit: absolute, or relative to this directory."
}

locals {
  timestamp = regex_replace(timestamp(), "[- TZ:]", "")
  # Per architecture: the Rust target of the binary, the AMI name suffix and architecture
  # filter, and the build instance's type. An arch outside this map fails validation.
  arches = {
    x86_64 = { target = "x86_64-unknown-linux-musl", ami = "x86_64", instance_type = "t3.micro" }
    arm64  = { target = "aarch64-unknown-linux-musl", ami = "arm64", instance_type = "t4g.micro" }
  }
  arch = local.arches[var.arch]
  # The first line-start `version = "..."` of Cargo.toml is the [package] one (regex_replace:
  # Packer 1.6.6 has no regex(); its file() mishandles "relative/../x", hence abspath).
  version = var.version != "" ? var.version : regex_replace(file("${abspath(path.root)}/../Cargo.toml"), "(?s)^.*?\nversion = \"([^\"]+)\".*$", "$1")
  # The release file name: the line of SHA256SUMS the binary is checked against.
  dist_name = "suaicloudapp-${local.version}-${local.arch.target}"
  # Relative paths are taken from this directory (path.root), not from the working directory:
  # `packer build .` here and `packer validate packer/suaicloudapp.pkr.hcl` from the repo root
  # find the same files.
  binary_path = var.binary_path != "" ? var.binary_path : "../dist/${local.dist_name}"
  binary      = substr(local.binary_path, 0, 1) == "/" ? local.binary_path : "${path.root}/${local.binary_path}"
  sums        = substr(var.sha256sums_path, 0, 1) == "/" ? var.sha256sums_path : "${path.root}/${var.sha256sums_path}"
  unit        = substr(var.unit_path, 0, 1) == "/" ? var.unit_path : "${path.root}/${var.unit_path}"
}

source "amazon-ebs" "al2023" {
  region        = var.region
  instance_type = local.arch.instance_type
  ssh_username  = "ec2-user"
  # SSH from the builder only (packer's default temporary security group allows 0.0.0.0/0).
  temporary_security_group_source_cidrs = var.ssh_source_cidrs
  ami_name      = "${var.ami_name_prefix}-${var.arch}-${local.timestamp}"

  # The newest standard Amazon Linux 2023 image for the architecture: al2023-ami-*-<arch>,
  # narrowed to the "al2023-ami-2023.*" names so that most_recent never picks the
  # "al2023-ami-minimal-*" flavour.
  source_ami_filter {
    filters = {
      name                = "al2023-ami-2023.*-${local.arch.ami}"
      architecture        = local.arch.ami
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["amazon"]
    most_recent = true
  }

  # Instances launched from this AMI default to IMDSv2 only (the app's identity look-up and
  # the SDK's instance-profile credentials both use IMDSv2 tokens), with a hop limit of 2 (what
  # EC2 gives an AMI registered this way): set 1 in the launch template to keep containers on the
  # instance away from the role's credentials (deploy/cloudformation.yaml does).
  imds_support = "v2.0"

  # The build instance itself: IMDSv2 only, hop limit 1 (no containers reaching metadata).
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tags = {
    Name        = "${var.ami_name_prefix}-${var.arch}-${local.timestamp}"
    Application = "suaicloudapp"
    Version     = local.version
    BaseAMI     = "{{ .SourceAMIName }}"
  }
}

build {
  sources = ["source.amazon-ebs.al2023"]

  # Uploaded under its release name, so that its SHA256SUMS line applies.
  provisioner "file" {
    source      = local.binary
    destination = "/tmp/${local.dist_name}"
  }

  provisioner "file" {
    source      = local.sums
    destination = "/tmp/SHA256SUMS"
  }

  provisioner "file" {
    source      = local.unit
    destination = "/tmp/suaicloudapp.service"
  }

  # Verified before anything runs it: the binary's digest must be its SHA256SUMS line (a missing
  # line fails too), then it must run on this instance (--version), then it is installed.
  provisioner "shell" {
    inline = [
      "set -eux",
      "cd /tmp",
      "grep -E '^[0-9a-f]{64}  ${local.dist_name}$' SHA256SUMS > suaicloudapp.sha256",
      "sha256sum -c suaicloudapp.sha256",
      "chmod 0755 /tmp/${local.dist_name}",
      "/tmp/${local.dist_name} --version",
      "sudo install -o root -g root -m 0755 /tmp/${local.dist_name} /usr/local/bin/suaicloudapp",
      "sudo install -o root -g root -m 0644 /tmp/suaicloudapp.service /etc/systemd/system/suaicloudapp.service",
      "sudo install -d -o root -g root -m 0755 /etc/suaicloudapp",
      # The RDS CA bundle, for [database] tls = "verify-identity" / [postgres] sslmode = "verify-full".
      "sudo curl -fsSL -o /etc/suaicloudapp/rds-global-bundle.pem https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem",
      "sudo chmod 0644 /etc/suaicloudapp/rds-global-bundle.pem",
      "rm -f /tmp/${local.dist_name} /tmp/SHA256SUMS /tmp/suaicloudapp.sha256 /tmp/suaicloudapp.service",
      "sudo systemctl daemon-reload",
      "sudo systemctl enable suaicloudapp",
    ]
  }
}
