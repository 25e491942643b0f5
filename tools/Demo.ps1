#requires -Version 7.4
<#
.SYNOPSIS
    The foundation demo: generate a model, import it, stream a completion, saying what each step did.
.DESCRIPTION
    Everything it writes goes to one temporary folder that is deleted at the end. With -Model, that GGUF file is
    imported instead of a generated one.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [string] $Model
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

function Write-Step([string] $Text) { Write-Host "`n==> $Text" -ForegroundColor Cyan }

Import-Module $ModulePath -Force
$work = Join-Path ([IO.Path]::GetTempPath()) "ckllm-demo-$([guid]::NewGuid().ToString('N'))"
New-Item -ItemType Directory -Path $work | Out-Null
try {
    if (-not $Model) {
        Write-Step 'New-CkModel: writing a Small (~5M parameter) llama model with a ChatML chat template'
        $Model = Join-Path $work 'demo.gguf'
        $clock = [Diagnostics.Stopwatch]::StartNew()
        $summary = New-CkModel -Path $Model -Preset Small -Seed 7 -ChatTemplate ChatML
        Write-Host ("Wrote {0} ({1:N0} parameters, {2:N1} MB, vocabulary {3}) in {4:N1} s. Its weights are random: expect noise, not answers." -f
            $summary.Path, $summary.ParameterCount, ($summary.FileSize / 1MB), $summary.VocabularySize, $clock.Elapsed.TotalSeconds)
    }

    Write-Step "Import-CkModel: validating the GGUF in managed code, then loading it into llama.cpp"
    $loaded = Import-CkModel -Path $Model -ContextSize 1024
    $loaded | Format-Table | Out-Host
    Write-Host "Loaded '$($loaded.Name)' in $([int]$loaded.LoadTime.TotalMilliseconds) ms; it is now the session's current model."

    Write-Step 'Invoke-CkCompletion -Stream: tokens are printed as they are generated'
    $result = Invoke-CkCompletion -Prompt 'Once upon a time' -MaxTokens 48 -Temperature 0.8 -Seed 1 -Stream
    Write-Host ("Generated {0} tokens at {1:N0} tokens/s after a {2}-token prompt ({3:N0} tokens/s); finished by {4}." -f
        $result.CompletionTokens, $result.TokensPerSecond, $result.PromptTokens, $result.PromptTokensPerSecond, $result.FinishReason)

    Write-Step "Invoke-CkCompletion -Messages: a chat formatted with the model's chat template"
    $chat = Invoke-CkCompletion -System 'You are terse.' -Messages @{ Role = 'user'; Content = 'Say hello.' } -MaxTokens 24 -Temperature 0 -Stream
    Write-Host "Chat format used: $($chat.ChatFormat). The model saw:" 
    Write-Host $chat.Prompt -ForegroundColor DarkGray

    Write-Step 'Invoke-CkCompletion -JsonSchema -AsObject: output constrained to a JSON schema, returned as an object'
    $schema = @{ type = 'object'; properties = @{ mood = @{ enum = @('happy', 'calm', 'curious') }; score = @{ type = 'integer' } }; required = @('mood', 'score') }
    $object = Invoke-CkCompletion -Prompt 'Describe your mood as JSON:' -JsonSchema $schema -AsObject -MaxTokens 64 -Temperature 0.7 -Seed 3
    $object | Format-List | Out-Host
    Write-Host 'Even a random model produces valid JSON of the requested shape: the grammar only allows matching tokens.'

    Write-Step 'Remove-CkModel: unloading the model and freeing its native memory'
    Remove-CkModel -Name $loaded.Name
    Write-Host "Model disposed: $($loaded.IsDisposed). Models still loaded: $(@(Get-CkModel).Count)."
}
finally {
    Get-CkModel | Remove-CkModel -Confirm:$false
    Remove-Item $work -Recurse -Force -ErrorAction Ignore
    Write-Host "`nRemoved the temporary folder $work."
}
