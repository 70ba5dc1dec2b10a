# terraform workspace new dev   (or: terraform workspace select dev)
# terraform apply -var-file=examples/dev.tfvars

aws_region = "eu-west-1"

# Short retention and no PITR: a development stack holds nothing worth keeping.
log_retention_days     = 14
point_in_time_recovery = false

log_level = "info,fanout=debug"
# Execution logs need the region's API Gateway logging role: apply terraform/account once
# per account and region first (docs/deploy.md).
api_execution_logging_level = "INFO"

throttling_burst_limit             = 50
throttling_rate_limit              = 100
sendmessage_throttling_burst_limit = 20
sendmessage_throttling_rate_limit  = 10
publish_throttling_burst_limit     = 20
publish_throttling_rate_limit      = 10

worker_maximum_concurrency = 2

alarm_email = null

tags = {
  Environment = "dev"
}

# auth_mode = "jwt" by default: HS256 with the secret the stack creates
# (put a value in it, docs/deploy.md); mint tokens with `fanout-local token`.
