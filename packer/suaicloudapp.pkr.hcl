# Bakes an Amazon Linux 2023 AMI with the static suaicloudapp binary and its systemd unit.
# Build with a modern packer from this directory:  packer init . && packer build .
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

variable "binary_path" {
  type        = string
  default     = "../target/x86_64-unknown-linux-musl/release/suaicloudapp"
  description = "The static musl build (make static): absolute, or relative to this directory."
}

variable "unit_path" {
  type        = string
  default     = "../systemd/suaicloudapp.service"
  description = "The systemd unit: absolute, or relative to this directory."
}

locals {
  timestamp = regex_replace(timestamp(), "[- TZ:]", "")
  # Relative paths are taken from this directory (path.root), not from the working directory:
  # `packer build .` here and `packer validate packer/suaicloudapp.pkr.hcl` from the repo root
  # find the same files.
  binary = substr(var.binary_path, 0, 1) == "/" ? var.binary_path : "${path.root}/${var.binary_path}"
  unit   = substr(var.unit_path, 0, 1) == "/" ? var.unit_path : "${path.root}/${var.unit_path}"
}

source "amazon-ebs" "al2023" {
  region        = var.region
  instance_type = "t3.micro"
  ssh_username  = "ec2-user"
  ami_name      = "${var.ami_name_prefix}-${local.timestamp}"

  # The newest standard Amazon Linux 2023 image: al2023-ami-*-x86_64, narrowed to the
  # "al2023-ami-2023.*" names so that most_recent never picks the "al2023-ami-minimal-*" flavour.
  source_ami_filter {
    filters = {
      name                = "al2023-ami-2023.*-x86_64"
      architecture        = "x86_64"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["amazon"]
    most_recent = true
  }

  # Instances launched from this AMI default to IMDSv2 only (the app's identity look-up and
  # the SDK's instance-profile credentials both use IMDSv2 tokens).
  imds_support = "v2.0"

  # The build instance itself: IMDSv2 only, hop limit 1 (no containers reaching metadata).
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  tags = {
    Name        = "${var.ami_name_prefix}-${local.timestamp}"
    Application = "suaicloudapp"
    BaseAMI     = "{{ .SourceAMIName }}"
  }
}

build {
  sources = ["source.amazon-ebs.al2023"]

  provisioner "file" {
    source      = local.binary
    destination = "/tmp/suaicloudapp"
  }

  provisioner "file" {
    source      = local.unit
    destination = "/tmp/suaicloudapp.service"
  }

  provisioner "shell" {
    inline = [
      "set -eux",
      "sudo install -o root -g root -m 0755 /tmp/suaicloudapp /usr/local/bin/suaicloudapp",
      "sudo install -o root -g root -m 0644 /tmp/suaicloudapp.service /etc/systemd/system/suaicloudapp.service",
      "sudo install -d -o root -g root -m 0755 /etc/suaicloudapp",
      # The RDS CA bundle, for [database] tls = "verify-identity" / [postgres] sslmode = "verify-full".
      "sudo curl -fsSL -o /etc/suaicloudapp/rds-global-bundle.pem https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem",
      "sudo chmod 0644 /etc/suaicloudapp/rds-global-bundle.pem",
      "rm -f /tmp/suaicloudapp /tmp/suaicloudapp.service",
      "/usr/local/bin/suaicloudapp --version",
      "sudo systemctl daemon-reload",
      "sudo systemctl enable suaicloudapp",
    ]
  }
}
