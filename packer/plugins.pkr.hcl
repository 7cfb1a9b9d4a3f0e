# Packer 1.7+ only: `packer init .` reads this and installs the Amazon plugin.
#
# Kept in its own file because Debian's packer 1.6.6 rejects a `packer { required_plugins }`
# block: the tests validate suaicloudapp.pkr.hcl alone with that version (see README.md).
packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.2.1"
    }
  }
}
