terraform {
  # 1.10 brings S3-native state locking (use_lockfile) and ephemeral values.
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }

  # Remote state, one state object per workspace: the S3 backend stores workspace
  # "prod" at env:/prod/<key>. Uncomment, fill in the bucket (versioned, encrypted,
  # created once outside this stack) and run `terraform init -migrate-state`.
  # use_lockfile = true takes an S3 conditional-write lock next to the state
  # object, so no DynamoDB lock table is needed (dynamodb_table is deprecated).
  #
  # backend "s3" {
  #   bucket       = "my-org-terraform-state"
  #   key          = "wsfanout/terraform.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}
