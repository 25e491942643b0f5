# Directory input, per-file size limit, legacy encodings and the prune limit of Add-/Sync-CkKnowledge.
BeforeAll {
    Import-Module $env:CKLLM_MODULE -Force
    . (Join-Path $PSScriptRoot 'Knowledge.TestHelpers.ps1')
}

Describe 'Add-CkKnowledge on a directory tree' {
    BeforeEach {
        $root = New-KbTestDirectory
        $tree = Join-Path $root 'tree'
        $kb = Join-Path $tree 'kb'   # the knowledge base lives inside the tree it indexes
        New-Item -ItemType Directory -Path (Join-Path $tree '.git'), (Join-Path $tree '.cache'), (Join-Path $tree 'docs') | Out-Null
        Set-Content (Join-Path $tree 'readme.md') '# Readme'
        Set-Content (Join-Path $tree 'docs/guide.txt') 'The guide talks about lighthouses.'
        Set-Content (Join-Path $tree '.env') 'SECRET=1'
        Set-Content (Join-Path $tree '.git/config') '[core]'
        Set-Content (Join-Path $tree '.cache/blob.txt') 'cached'
        Add-CkKnowledge -Text 'seed' -Source seed -KnowledgeBase $kb | Out-Null
    }
    AfterEach {
        Close-KbTestKnowledgeBase $kb
        Get-ChildItem -LiteralPath $root -Recurse -Directory -ErrorAction Ignore | ForEach-Object { $_.UnixFileMode = 'UserRead, UserWrite, UserExecute' }
        Remove-KbTestDirectory $root
    }

    It 'skips hidden entries, .git and the knowledge base''s own files' {
        $out = Add-CkKnowledge -Path $tree -Recurse -KnowledgeBase $kb
        $out.Source | Sort-Object | Should -Be @((Join-Path $tree 'docs/guide.txt'), (Join-Path $tree 'readme.md'))
    }

    It 'includes hidden entries with -Force, but never .git or the knowledge base' {
        $out = Add-CkKnowledge -Path $tree -Recurse -Force -KnowledgeBase $kb
        $out.Source | Sort-Object | Should -Be @((Join-Path $tree '.cache/blob.txt'), (Join-Path $tree '.env'), (Join-Path $tree 'docs/guide.txt'), (Join-Path $tree 'readme.md'))
    }

    It 'reports an unreadable folder as a non-terminating error and adds the rest' -Skip:($IsWindows -or [Environment]::UserName -eq 'root') {
        $locked = Join-Path $tree 'locked'
        New-Item -ItemType Directory -Path $locked | Out-Null
        Set-Content (Join-Path $locked 'x.txt') 'hidden away'
        (Get-Item $locked).UnixFileMode = 'None'
        $out = Add-CkKnowledge -Path $tree -Recurse -KnowledgeBase $kb -ErrorAction SilentlyContinue -ErrorVariable problems
        $problems[0].FullyQualifiedErrorId | Should -BeLike 'DirectoryUnreadable,*'
        $problems[0].TargetObject | Should -Be $locked
        $out.Source | Should -Contain (Join-Path $tree 'readme.md')
    }

    # Root reads any folder: run the same call in a child pwsh without the capabilities that bypass permission bits.
    It 'reports an unreadable folder as a non-terminating error and adds the rest (root without DAC capabilities)' -Skip:($IsWindows -or [Environment]::UserName -ne 'root' -or -not (Get-Command setpriv -ErrorAction Ignore)) {
        $locked = Join-Path $tree 'locked'
        New-Item -ItemType Directory -Path $locked | Out-Null
        Set-Content (Join-Path $locked 'x.txt') 'hidden away'
        (Get-Item $locked).UnixFileMode = 'None'
        Close-KbTestKnowledgeBase $kb
        $script = Join-Path $root 'child.ps1'
        Set-Content $script @"
Import-Module '$env:CKLLM_MODULE'
`$out = Add-CkKnowledge -Path '$tree' -Recurse -KnowledgeBase '$kb' -ErrorAction SilentlyContinue -ErrorVariable problems
[pscustomobject]@{ Ids = @(`$problems | ForEach-Object FullyQualifiedErrorId); Targets = @(`$problems | ForEach-Object { [string]`$_.TargetObject }); Sources = @(`$out.Source) } | ConvertTo-Json -Compress
"@
        $pwsh = [Environment]::ProcessPath
        $pre = @(if ((Split-Path $pwsh -Leaf) -like 'dotnet*') { Join-Path $PSHOME 'pwsh.dll' })
        $lines = & setpriv --bounding-set=-dac_override,-dac_read_search -- $pwsh @pre -NoProfile -NonInteractive -File $script 2>&1 | ForEach-Object { "$_" }
        $result = $lines | Where-Object { $_ -like '{*' } | Select-Object -Last 1 | ConvertFrom-Json
        $result | Should -Not -BeNullOrEmpty -Because ($lines -join [Environment]::NewLine)
        $result.Ids[0] | Should -BeLike 'DirectoryUnreadable,*'
        $result.Targets[0] | Should -Be $locked
        $result.Sources | Should -Contain (Join-Path $tree 'readme.md')
        $result.Sources | Should -Not -Contain (Join-Path $locked 'x.txt')
    }
}

Describe 'Add-CkKnowledge file limits and encodings' {
    BeforeAll {
        $root = New-KbTestDirectory
        $kb = Join-Path $root 'kb'
    }
    AfterAll { Remove-KbTestDirectory $root }

    It 'skips a file over -MaxFileSize with a warning naming it, and adds the others' {
        $big = Join-Path $root 'big.txt'; $small = Join-Path $root 'small.txt'
        Set-Content $big ('word ' * 2000)
        Set-Content $small 'Small file about herons.'
        $out = Add-CkKnowledge -LiteralPath $big, $small -MaxFileSize 4KB -KnowledgeBase $kb -WarningVariable warnings -WarningAction SilentlyContinue
        $out.Source | Should -Be $small
        $warnings.Count | Should -Be 1
        "$($warnings[0])" | Should -BeLike "*'$big'*over the per-file limit of 4,096 bytes*-MaxFileSize*"
    }

    It 'reads a Windows-1252 file as such and warns with the file and byte offset' {
        $legacy = Join-Path $root 'legacy.txt'
        [IO.File]::WriteAllBytes($legacy, [byte[]](@([byte[]][char[]]'Caf') + 0xE9 + @([byte[]][char[]]' au lait')))
        $out = Add-CkKnowledge -LiteralPath $legacy -KnowledgeBase $kb -WarningVariable warnings -WarningAction SilentlyContinue
        $out.Status | Should -Be 'Added'
        "$($warnings[0])" | Should -BeLike "*'$legacy' is not valid UTF-8*offset 3*Windows-1252*"
        (Search-CkKnowledge 'lait' -Mode Keyword -KnowledgeBase $kb).Text | Should -Be 'Café au lait'
    }
}

Describe 'Prune limits' {
    BeforeEach {
        $root = New-KbTestDirectory
        $kb = Join-Path $root 'kb'
        $files = 1..4 | ForEach-Object { $f = Join-Path $root "f$_.txt"; Set-Content $f "File number $_ about otters."; $f }
        Add-CkKnowledge -LiteralPath $files -KnowledgeBase $kb | Out-Null
    }
    AfterEach { Remove-KbTestDirectory $root }

    It 'Sync-CkKnowledge refuses to remove more than half of the sources, and removes them with -Force' {
        Remove-Item $files[0], $files[1], $files[2]
        Sync-CkKnowledge -KnowledgeBase $kb -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable problems | Should -BeNullOrEmpty
        $problems[0].FullyQualifiedErrorId | Should -BeLike 'PruneLimitExceeded,*'
        $problems[0].CategoryInfo.Category | Should -Be 'LimitsExceeded'
        $problems[0].Exception.Message | Should -BeLike '*3 of the 4 sources*-Force*'
        @(Get-CkKnowledge -KnowledgeBase $kb).Count | Should -Be 4
        $removed = Sync-CkKnowledge -KnowledgeBase $kb -Force -Confirm:$false
        @($removed | Where-Object Status -eq 'Removed').Count | Should -Be 3
        (Get-CkKnowledge -KnowledgeBase $kb).Source | Should -Be $files[3]
    }

    It 'removes up to half without -Force' {
        Remove-Item $files[0], $files[1]
        $removed = Sync-CkKnowledge -KnowledgeBase $kb -PruneOnly -Confirm:$false
        @($removed).Count | Should -Be 2
    }

    It 'Add-CkKnowledge -Prune follows the same limit' {
        Remove-Item $files[0], $files[1], $files[2]
        Add-CkKnowledge -Text 'new' -Source new -KnowledgeBase $kb -Prune -ErrorAction SilentlyContinue -ErrorVariable problems | Out-Null
        $problems[0].FullyQualifiedErrorId | Should -BeLike 'PruneLimitExceeded,*'
        @(Get-CkKnowledge -KnowledgeBase $kb).Count | Should -Be 5
    }

}
