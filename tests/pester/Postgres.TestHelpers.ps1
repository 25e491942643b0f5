# A throwaway PostgreSQL cluster for the server knowledge-base tests (dot-source in BeforeAll): initdb + pg_ctl from the
# installed PostgreSQL in a temp directory on a free port, run as the 'postgres' user through runuser when the tests run
# as root (initdb refuses root). Password authentication for user 'ck'. Stop-CkTestPostgres removes everything.

function Start-CkTestPostgres {
    $bin = Get-ChildItem /usr/lib/postgresql/*/bin/initdb -ErrorAction SilentlyContinue | Sort-Object FullName -Descending | Select-Object -First 1
    if (-not $bin) { throw 'PostgreSQL server binaries (initdb) not found under /usr/lib/postgresql/*/bin.' }
    $listener = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 0)
    $listener.Start(); $port = $listener.LocalEndpoint.Port; $listener.Stop()
    $root = (New-Item -ItemType Directory -Path (Join-Path ([IO.Path]::GetTempPath()) ("ckllm-pg-" + [guid]::NewGuid().ToString('N')))).FullName
    $server = [pscustomobject]@{
        Bin = $bin.DirectoryName; Root = $root; Port = $port; User = 'ck'; Password = 'ck-test-secret'
        AsRoot = ((& id -u) -eq '0')
    }
    Set-Content -LiteralPath (Join-Path $root 'pw') -Value $server.Password -NoNewline
    if ($server.AsRoot) { & chown -R postgres $root }
    Invoke-CkTestPg $server initdb -D "$root/data" -A scram-sha-256 -U ck --pwfile "$root/pw" -E UTF8 --no-sync
    Start-CkTestPostgresServer $server
    $server
}

function Start-CkTestPostgresServer($Server) {
    Invoke-CkTestPg $Server pg_ctl -D "$($Server.Root)/data" -o "-p $($Server.Port) -k $($Server.Root) -c listen_addresses=127.0.0.1 -c fsync=off" -l "$($Server.Root)/log" start -w
}

function Invoke-CkTestPg($Server, [string] $Tool) {
    $exe = Join-Path $Server.Bin $Tool
    $out = if ($Server.AsRoot) { & runuser -u postgres -- $exe @args 2>&1 } else { & $exe @args 2>&1 }
    if ($LASTEXITCODE -ne 0) { throw "$Tool failed ($LASTEXITCODE): $out" }
}

# A knowledge base URI on the test server (with the password unless -NoPassword).
function Get-CkTestPostgresUri($Server, [string] $Name, [switch] $NoPassword, [string] $Database = 'postgres') {
    $auth = if ($NoPassword) { $Server.User } else { "$($Server.User):$($Server.Password)" }
    "postgresql://$auth@127.0.0.1:$($Server.Port)/$($Database)?name=$Name"
}

function Stop-CkTestPostgres($Server) {
    if (-not $Server) { return }
    try { Invoke-CkTestPg $Server pg_ctl -D "$($Server.Root)/data" stop -m fast } catch { Write-Warning $_ }
    Remove-Item -LiteralPath $Server.Root -Recurse -Force -ErrorAction SilentlyContinue
}
