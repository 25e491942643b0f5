using System.Security.Cryptography;
using System.Text;
using CkLlm.Engine.Serving.Mcp;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;

namespace CkLlm.Server.Serving;

/// <summary>
/// The one place the ASP.NET Core application is put together: Kestrel on the requested address, no logging
/// providers (nothing reaches the pwsh console), the error and API-key middleware, then the endpoints.
/// Protocols: the OpenAI API under /v1, llama.cpp's /tokenize and /detokenize, and MCP at /mcp (<see cref="ConfigureServices"/>, <see cref="MapEndpoints"/>).
/// </summary>
internal static class ServerApp
{
    public static WebApplication Build(ServingContext serving)
    {
        var options = serving.Options;
        // The empty builder reads no appsettings.json, environment or command line: the cmdlet's parameters are the
        // whole configuration, whatever the current directory holds.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = "CkLlm.Server", ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            kestrel.Listen(options.BindAddress, options.Port, listen => listen.Protocols = HttpProtocols.Http1AndHttp2);
        });
        builder.Services.AddRoutingCore();
        builder.Services.AddSingleton(serving);
        ConfigureServices(builder.Services, serving);

        var app = builder.Build();
        app.Use(HandleFailures);
        if (options.ApiKey is { } key) app.Use(RequireKey(key));
        app.UseRouting();
        MapEndpoints(app, serving);
        app.MapFallback(http => ServerResponses.WriteErrorAsync(http,
            new ApiError(StatusCodes.Status404NotFound, $"No endpoint {http.Request.Method} {http.Request.Path}. See GET /v1/models.", null, "unknown_endpoint")));
        return app;
    }

    /// <summary>Services of the protocols the server speaks: routing for the OpenAI API; MCP (the tools of
    /// Start-CkMcpServer on the served knowledge bases, stateless streamable HTTP). ask_knowledge answers with the
    /// session's current model, as rag/ models do, through the same batch runner, and waits for a slot of the same admission
    /// queue.</summary>
    private static void ConfigureServices(IServiceCollection services, ServingContext serving)
    {
        // Served as rag/ chats are (GenerationService.Serve): a llama.cpp model's answer decodes in the model's batch.
        var tools = new KnowledgeTools(KnowledgeTools.NameKnowledgeBases(serving.KnowledgeBases.Select(k => k.KnowledgeBase)),
            () => serving.Generation.Serve(serving.Session.GetModel()));
        services.AddMcpServer(options => McpKnowledgeServer.Configure(options, tools, serving.Admission.TryEnterAsync))
            .WithHttpTransport(http => http.Stateless = true);
    }

    /// <summary>The endpoints of the protocols the server speaks.</summary>
    private static void MapEndpoints(IEndpointRouteBuilder endpoints, ServingContext serving)
    {
        _ = serving;
        OpenAiEndpoints.Map(endpoints);
        TokenizerEndpoints.Map(endpoints);
        endpoints.MapMcp("/mcp");
    }

    /// <summary>Counts the request; a failure before the response started becomes an OpenAI error body (4xx for the
    /// client's faults, 500 for ours); after that the connection is closed. Nothing escapes to the host.</summary>
    private static async Task HandleFailures(HttpContext http, RequestDelegate next)
    {
        var serving = http.RequestServices.GetRequiredService<ServingContext>();
        serving.CountRequest();
        try
        {
            await next(http).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            // The client went away.
        }
        catch (Exception e)
        {
            var error = e is Microsoft.AspNetCore.Http.BadHttpRequestException bad ? new ApiError(bad.StatusCode, bad.Message) : ServerResponses.ToApiError(e);
            if (error.Status == StatusCodes.Status500InternalServerError) serving.CountFailure(); // a fault of ours, not saturation (503)
            if (http.Response.HasStarted)
            {
                http.Abort();
                return;
            }
            http.Response.Clear();
            await ServerResponses.WriteErrorAsync(http, error).ConfigureAwait(false);
        }
    }

    /// <summary>Every request carries "Authorization: Bearer &lt;key&gt;" (compared in constant time), else 401.</summary>
    private static Func<HttpContext, RequestDelegate, Task> RequireKey(string key)
    {
        var expected = Encoding.UTF8.GetBytes(key);
        return (http, next) =>
        {
            var header = http.Request.Headers.Authorization.ToString();
            if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
                throw ApiError.Unauthorized("This server needs an API key: send 'Authorization: Bearer <key>'.");
            var given = Encoding.UTF8.GetBytes(header["Bearer ".Length..].Trim());
            if (!CryptographicOperations.FixedTimeEquals(given, expected)) throw ApiError.Unauthorized("The API key is not valid for this server.");
            return next(http);
        };
    }
}
