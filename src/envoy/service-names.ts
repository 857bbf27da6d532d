/** The gRPC services hopguard serves, by their fully qualified .proto names. */
export const AUTHORIZATION_SERVICE_NAME = 'envoy.service.auth.v3.Authorization';
export const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';
