@{
    RootModule           = 'CkLlm.dll'
    ModuleVersion        = '0.1.0'
    GUID                 = 'f3c1a6e2-5b7d-4c1e-9a43-2d8e6b0c7f15'
    Author               = 'CkLlm contributors'
    CompanyName          = 'CkLlm'
    Copyright            = 'Released into the public domain (Unlicense).'
    Description          = 'Turn a local llama.cpp model into a custom-knowledge LLM: load GGUF models, ingest your documents into an on-disk knowledge base, answer questions with citations (RAG) and fine-tune on the same material.'
    PowerShellVersion    = '7.6'
    CompatiblePSEditions = @('Core')
    FormatsToProcess     = @('formats/CkLlm.Model.format.ps1xml', 'formats/CkLlm.Knowledge.format.ps1xml', 'formats/CkLlm.Training.format.ps1xml', 'formats/CkLlm.Gguf.format.ps1xml', 'formats/CkLlm.Rag.format.ps1xml', 'formats/CkLlm.Server.format.ps1xml')
    CmdletsToExport      = @(
        # Model
        'New-CkModel', 'Import-CkModel', 'Get-CkModel', 'Remove-CkModel', 'Invoke-CkCompletion', 'Get-CkSession',
        # Knowledge
        'Add-CkKnowledge', 'Search-CkKnowledge', 'Get-CkKnowledge', 'Remove-CkKnowledge', 'Sync-CkKnowledge',
        # RAG
        'Invoke-CkRag', 'Measure-CkRetrieval',
        # Training
        'Start-CkFineTune', 'Measure-CkPerplexity',
        # Serving
        'Start-CkServer', 'Get-CkServer', 'Stop-CkServer'
    )
    FunctionsToExport    = @()
    VariablesToExport    = @()
    AliasesToExport      = @()
    PrivateData          = @{
        PSData = @{
            Tags       = @('LLM', 'llama.cpp', 'RAG', 'GGUF', 'FineTuning', 'Linux')
            LicenseUri = 'https://unlicense.org'
        }
    }
}
