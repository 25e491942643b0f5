using CkLlm.Engine.Inference;
using CkLlm.Engine.Model;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace CkLlm.Server.Serving;

/// <summary>
/// llama.cpp server's POST /tokenize and /detokenize, so a client budgets prompts with the served model's own
/// tokenizer (CkLlm's remote models probe /tokenize). Body shapes are llama.cpp's: {"content": "..."} gives
/// {"tokens": [...]}; "add_special" (default false) and "parse_special" (default true) mean what they mean there.
/// A "model" field (vLLM's shape) picks the model; without it the session's current model answers.
/// </summary>
internal static class TokenizerEndpoints
{
    public static void Map(IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPost("/tokenize", TokenizeAsync);
        endpoints.MapPost("/detokenize", DetokenizeAsync);
    }

    private static async Task TokenizeAsync(HttpContext http)
    {
        var serving = http.RequestServices.GetRequiredService<ServingContext>();
        var dto = await RequestReader.ReadBodyAsync(http.Request, ServerJson.Default.TokenizeRequestDto, http.RequestAborted).ConfigureAwait(false);
        var text = dto.Content ?? dto.Prompt ?? throw ApiError.BadRequest("'content' is required.", "content");
        if (dto.WithPieces == true) throw ApiError.BadRequest("'with_pieces' is not supported: tokenize, then POST /detokenize the ids you need.", "with_pieces");
        var model = LocalModel(serving, dto.Model);
        var tokens = model.Tokenize(text, addBos: dto.AddSpecial == true, parseSpecial: dto.ParseSpecial ?? true);
        await ServerResponses.WriteJsonAsync(http, new TokenizeResultDto(tokens, tokens.Length, model.ContextSize), ServerJson.Default.TokenizeResultDto).ConfigureAwait(false);
    }

    private static async Task DetokenizeAsync(HttpContext http)
    {
        var serving = http.RequestServices.GetRequiredService<ServingContext>();
        var dto = await RequestReader.ReadBodyAsync(http.Request, ServerJson.Default.DetokenizeRequestDto, http.RequestAborted).ConfigureAwait(false);
        if (dto.Tokens is null) throw ApiError.BadRequest("'tokens' must be an array of token ids.", "tokens");
        var model = LocalModel(serving, dto.Model);
        // llama.cpp reads out of bounds on an id outside the vocabulary: refuse it here.
        var bad = dto.Tokens.FindIndex(t => t < 0 || t >= model.VocabularySize);
        if (bad >= 0) throw ApiError.BadRequest($"tokens[{bad}] = {dto.Tokens[bad]} is not a token id of model '{model.Name}' (0 to {model.VocabularySize - 1}).", "tokens");
        await ServerResponses.WriteJsonAsync(http, new DetokenizeResultDto(model.Detokenize(dto.Tokens)), ServerJson.Default.DetokenizeResultDto).ConfigureAwait(false);
    }

    /// <summary>The llama.cpp model a tokenizer request names (a rag/ id: the model answering it), or the current one.</summary>
    private static LoadedModel LocalModel(ServingContext serving, string? id)
    {
        IChatModel model = id is { Length: > 0 }
            ? serving.ResolveModel(id).Model
            : serving.Session.CurrentModel ?? throw new ApiError(StatusCodes.Status503ServiceUnavailable, "No model is loaded to tokenize with.", "model", "no_model_loaded");
        return model as LoadedModel
            ?? throw ApiError.BadRequest($"Model '{model.Name}' is not a local llama.cpp model: its tokenizer is on the server it comes from.", "model", "no_local_tokenizer");
    }
}
