# terraform workspace new prod   (or: terraform workspace select prod)
# terraform apply -var-file=examples/prod.tfvars

aws_region = "eu-west-1"

log_retention_days        = 365
point_in_time_recovery    = true
table_deletion_protection = true

log_level = "info"
# Execution logs need the region's API Gateway logging role: apply terraform/account once
# per account and region first (docs/deploy.md).
api_execution_logging_level = "ERROR"

throttling_burst_limit             = 2000
throttling_rate_limit              = 5000
sendmessage_throttling_burst_limit = 500
sendmessage_throttling_rate_limit  = 200
publish_throttling_burst_limit     = 500
publish_throttling_rate_limit      = 200

worker_memory_mb           = 1024
worker_timeout_seconds     = 120
worker_batch_size          = 10
worker_maximum_concurrency = 50
fanout_concurrency         = 512

# Tokens from the organisation's Cognito user pool (its ID tokens, whose `rooms`
# claim a pre-token-generation trigger adds): replace the pool id and client id.
auth_mode    = "jwt"
jwt_issuer   = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_EXAMPLE11"
jwt_audience = "1example23456789abcdefghij"
jwks_url     = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_EXAMPLE11/.well-known/jwks.json"

alarm_email                      = "oncall@example.com"
alarm_oldest_message_age_seconds = 60

tags = {
  Environment = "prod"
}
