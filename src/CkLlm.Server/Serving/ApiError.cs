namespace CkLlm.Server.Serving;

/// <summary>A request the server refuses, answered as an OpenAI-style error body with this HTTP status.</summary>
internal sealed class ApiError(int status, string message, string? param = null, string? code = null) : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    /// <summary>OpenAI's error "type" for the status.</summary>
    public string Type => Status switch
    {
        401 => "authentication_error",
        404 => "not_found_error",
        413 => "invalid_request_error",
        429 or 503 => "server_overloaded",
        >= 500 => "server_error",
        _ => "invalid_request_error",
    };

    public static ApiError BadRequest(string message, string? param = null, string? code = null) => new(400, message, param, code);

    public static ApiError ModelNotFound(string model) =>
        new(404, $"The model '{model}' does not exist or is not served. GET /v1/models lists the served ids.", "model", "model_not_found");

    public static ApiError Unauthorized(string message) => new(401, message, null, "invalid_api_key");

    public static ApiError Saturated(string message) => new(503, message, null, "server_overloaded");
}
