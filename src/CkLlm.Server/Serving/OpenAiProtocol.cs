using System.Text.Json;
using System.Text.Json.Serialization;

namespace CkLlm.Server.Serving;

// The OpenAI wire format, as DTOs for System.Text.Json's source generator (snake_case names). Fields that OpenAI lets be
// "a string or an array" are JsonElement and are read by RequestReader, which turns every shape it does not accept into
// a 400 with the parameter's name.

/// <summary>What chat and text completion requests share: the model and the sampling parameters.</summary>
internal abstract class GenerationRequestDto
{
    public string? Model { get; set; }
    public int? MaxTokens { get; set; }
    public float? Temperature { get; set; }
    public float? TopP { get; set; }
    public long? Seed { get; set; }
    public JsonElement? Stop { get; set; }
    public bool? Stream { get; set; }
    public StreamOptionsDto? StreamOptions { get; set; }
    public int? N { get; set; }
}

internal sealed class ChatCompletionRequestDto : GenerationRequestDto
{
    public List<ChatMessageDto?>? Messages { get; set; }
    public int? MaxCompletionTokens { get; set; }
    public ResponseFormatDto? ResponseFormat { get; set; }
}

internal sealed class ChatMessageDto
{
    public string? Role { get; set; }
    public JsonElement? Content { get; set; }
}

internal sealed class StreamOptionsDto
{
    public bool? IncludeUsage { get; set; }
}

internal sealed class ResponseFormatDto
{
    public string? Type { get; set; }
    public JsonSchemaFormatDto? JsonSchema { get; set; }
}

internal sealed class JsonSchemaFormatDto
{
    public string? Name { get; set; }
    public JsonElement? Schema { get; set; }
    public bool? Strict { get; set; }
}

internal sealed class TextCompletionRequestDto : GenerationRequestDto
{
    public JsonElement? Prompt { get; set; }
    public bool? Echo { get; set; }
}

internal sealed class EmbeddingRequestDto
{
    public string? Model { get; set; }
    public JsonElement? Input { get; set; }
    public string? EncodingFormat { get; set; }
    public int? Dimensions { get; set; }
}

internal sealed class SearchRequestDto
{
    /// <summary>A served knowledge base: "name" or "rag/name"; optional when exactly one is served.</summary>
    public string? KnowledgeBase { get; set; }
    public string? Model { get; set; }
    public string? Query { get; set; }
    public int? Top { get; set; }
    public string? Mode { get; set; }
    public Dictionary<string, string>? Filter { get; set; }
    public double? MinScore { get; set; }
}

internal sealed record ErrorBodyDto(ErrorDto Error);

internal sealed record ErrorDto(string Message, string Type, string? Param, string? Code);

internal sealed record ModelListDto(IReadOnlyList<ModelDto> Data)
{
    public string Object => "list";
}

/// <param name="MaxModelLen">The context window a request gets (vLLM's ModelCard field, read by clients that budget
/// prompts); for rag/ ids, that of the model answering.</param>
/// <param name="Meta">llama.cpp server's model metadata (a llama.cpp model only).</param>
internal sealed record ModelDto(string Id, long Created, string OwnedBy, int? MaxModelLen, ModelMetaDto? Meta)
{
    public string Object => "model";
}

/// <summary>llama.cpp server's "meta" of a /v1/models entry: vocabulary size, trained context, parameters, file size.</summary>
internal sealed record ModelMetaDto(int NVocab, int NCtxTrain, int NEmbd, long NParams, long Size);

/// <summary>llama.cpp server's POST /tokenize body ("prompt" as vLLM names it is read too).</summary>
internal sealed class TokenizeRequestDto
{
    public string? Model { get; set; }
    public string? Content { get; set; }
    public string? Prompt { get; set; }
    public bool? AddSpecial { get; set; }
    public bool? ParseSpecial { get; set; }
    public bool? WithPieces { get; set; }
}

internal sealed record TokenizeResultDto(IReadOnlyList<int> Tokens, int Count, int MaxModelLen);

/// <summary>llama.cpp server's POST /detokenize body.</summary>
internal sealed class DetokenizeRequestDto
{
    public string? Model { get; set; }
    public List<int>? Tokens { get; set; }
}

internal sealed record DetokenizeResultDto(string Content);

internal sealed record UsageDto(int PromptTokens, int CompletionTokens)
{
    public int TotalTokens => PromptTokens + CompletionTokens;
}

internal sealed record AssistantMessageDto(string Role, string Content);

internal sealed record ChatChoiceDto(int Index, AssistantMessageDto Message, string FinishReason);

internal sealed record ChatCompletionDto(string Id, long Created, string Model, IReadOnlyList<ChatChoiceDto> Choices, UsageDto Usage,
    IReadOnlyList<CitationDto>? Citations)
{
    public string Object => "chat.completion";
}

internal sealed record DeltaDto(string? Role, string? Content);

internal sealed record ChatChunkChoiceDto(int Index, DeltaDto Delta, string? FinishReason);

internal sealed record ChatCompletionChunkDto(string Id, long Created, string Model, IReadOnlyList<ChatChunkChoiceDto> Choices, UsageDto? Usage,
    IReadOnlyList<CitationDto>? Citations)
{
    public string Object => "chat.completion.chunk";
}

internal sealed record TextChoiceDto(int Index, string Text, string? FinishReason)
{
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public object? Logprobs => null;
}

internal sealed record TextCompletionDto(string Id, long Created, string Model, IReadOnlyList<TextChoiceDto> Choices, UsageDto? Usage)
{
    public string Object => "text_completion";
}

/// <summary>A numbered passage a rag/ answer's [n] markers refer to.</summary>
internal sealed record CitationDto(int Number, string Source, string? Heading, int? LineStart, int? LineEnd, int? Page, double Score,
    string Location, bool Cited);

/// <summary>One embedding: a float array, or (encoding_format "base64") the little-endian float32 bytes in base64.</summary>
internal sealed record EmbeddingDto(int Index, JsonElement Embedding)
{
    public string Object => "embedding";
}

internal sealed record EmbeddingUsageDto(int PromptTokens)
{
    public int TotalTokens => PromptTokens;
}

internal sealed record EmbeddingListDto(IReadOnlyList<EmbeddingDto> Data, string Model, EmbeddingUsageDto Usage)
{
    public string Object => "list";
}

internal sealed record SearchHitDto(int Rank, double Score, string Text, string Source, string? Heading, string? Title, int? LineStart,
    int? LineEnd, int? Page, string Citation, IReadOnlyDictionary<string, string> Metadata);

internal sealed record SearchResultDto(string KnowledgeBase, string Query, IReadOnlyList<SearchHitDto> Data)
{
    public string Object => "list";
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, NumberHandling = JsonNumberHandling.Strict)]
[JsonSerializable(typeof(ChatCompletionRequestDto))]
[JsonSerializable(typeof(TextCompletionRequestDto))]
[JsonSerializable(typeof(EmbeddingRequestDto))]
[JsonSerializable(typeof(SearchRequestDto))]
[JsonSerializable(typeof(ErrorBodyDto))]
[JsonSerializable(typeof(ModelListDto))]
[JsonSerializable(typeof(ChatCompletionDto))]
[JsonSerializable(typeof(ChatCompletionChunkDto))]
[JsonSerializable(typeof(TextCompletionDto))]
[JsonSerializable(typeof(EmbeddingListDto))]
[JsonSerializable(typeof(SearchResultDto))]
[JsonSerializable(typeof(TokenizeRequestDto))]
[JsonSerializable(typeof(TokenizeResultDto))]
[JsonSerializable(typeof(DetokenizeRequestDto))]
[JsonSerializable(typeof(DetokenizeResultDto))]
[JsonSerializable(typeof(float[]))]
[JsonSerializable(typeof(string))]
internal sealed partial class ServerJson : JsonSerializerContext;
