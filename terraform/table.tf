################################################################################
# DynamoDB: one item per open WebSocket connection, with the rooms it is in
################################################################################

resource "aws_dynamodb_table" "connections" {
  #checkov:skip=CKV_AWS_119:Encrypted at rest with the AWS-managed DynamoDB key by default (server_side_encryption enabled); set var.kms_key_arn to use a customer-managed key.
  name                        = "${local.name_prefix}-connections"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "connectionId"
  deletion_protection_enabled = var.table_deletion_protection

  attribute {
    name = "connectionId"
    type = "S"
  }

  # API Gateway closes connections after 2 h and $disconnect is best-effort: TTL
  # removes the records that $disconnect missed.
  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  lifecycle {
    precondition {
      condition     = can(regex("^[a-z0-9][a-z0-9-]*$", terraform.workspace)) && length(local.name_prefix) <= 40
      error_message = "The workspace name must be lowercase letters, digits and dashes, and <project_name>-<workspace> at most 40 characters (IAM role and Lambda names are limited to 64)."
    }
  }
}

################################################################################
# DynamoDB: one item per connection and room it is in: the worker Queries a
# room's members page by page, strongly consistent, so a member whose join
# returned before a page is read is on it.
################################################################################

resource "aws_dynamodb_table" "memberships" {
  #checkov:skip=CKV_AWS_119:Encrypted at rest with the AWS-managed DynamoDB key by default (server_side_encryption enabled); set var.kms_key_arn to use a customer-managed key.
  name                        = "${local.name_prefix}-memberships"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "room"
  range_key                   = "connectionId"
  deletion_protection_enabled = var.table_deletion_protection

  attribute {
    name = "room"
    type = "S"
  }

  attribute {
    name = "connectionId"
    type = "S"
  }

  # A membership expires with its connection: TTL removes those a $disconnect missed.
  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
}

################################################################################
# DynamoDB: one progress record per fan-out job hop (checkpoints, leases)
################################################################################

resource "aws_dynamodb_table" "progress" {
  #checkov:skip=CKV_AWS_119:Encrypted at rest with the AWS-managed DynamoDB key by default (server_side_encryption enabled); set var.kms_key_arn to use a customer-managed key.
  #checkov:skip=CKV_AWS_28:Progress records are short-lived (TTL of days) and rebuilt by the next run; point-in-time recovery follows var.point_in_time_recovery like the connections table.
  name                        = "${local.name_prefix}-progress"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "key"
  deletion_protection_enabled = var.table_deletion_protection

  attribute {
    name = "key"
    type = "S"
  }

  # A record must outlive every redelivery of its job; after that TTL removes it.
  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
}

################################################################################
# DynamoDB: each room's sequence (offset 0) and its last messages (offset >= 1)
################################################################################

resource "aws_dynamodb_table" "history" {
  #checkov:skip=CKV_AWS_119:Encrypted at rest with the AWS-managed DynamoDB key by default (server_side_encryption enabled); set var.kms_key_arn to use a customer-managed key.
  name                        = "${local.name_prefix}-history"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "room"
  range_key                   = "offset"
  deletion_protection_enabled = var.table_deletion_protection

  attribute {
    name = "room"
    type = "S"
  }

  attribute {
    name = "offset"
    type = "N"
  }

  # Messages expire history_ttl_seconds after they were accepted, a room's sequence a day
  # after its last message's expiry; readers filter by expiresAt, since TTL deletes late.
  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
}
