provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge(var.tags, {
      Project   = var.project_name
      Workspace = terraform.workspace
      ManagedBy = "terraform"
    })
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  # Every resource name starts with this, so each workspace is an independent stack.
  name_prefix = "${var.project_name}-${terraform.workspace}"

  # The API Gateway stage is named after the workspace: wss://<api>.execute-api.<region>.amazonaws.com/<workspace>.
  stage_name = terraform.workspace

  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  dns_suffix = data.aws_partition.current.dns_suffix
  region     = data.aws_region.current.region


  # API Gateway gives up on a route's integration after 29 s.
  integration_timeout_seconds = 29

  # ordering = "per_room": the fan-out queue and its DLQ are FIFO, each room a message group.
  ordered = var.ordering == "per_room"

  # Built from the API id and the stage name rather than from the stage resource:
  # the stage depends on the routes, the routes on the functions, and the worker's
  # environment needs this value (referencing the stage would be a cycle).
  default_management_endpoint = "https://${aws_apigatewayv2_api.this.id}.execute-api.${local.region}.${local.dns_suffix}/${local.stage_name}"
  management_endpoint         = coalesce(var.management_endpoint_override, local.default_management_endpoint)

  alarm_actions = [for topic in aws_sns_topic.alarms : topic.arn]
}
