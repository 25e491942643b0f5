using System.Management.Automation;
using System.Reflection;
using System.Runtime.Loader;

namespace CkLlm;

/// <summary>
/// Routes the engine assembly (and, through it, every dependency: LLamaSharp, Microsoft.Extensions.*, ...) into a
/// private AssemblyLoadContext loaded from the module's deps/ folder, so versions other modules loaded into pwsh's
/// default context cannot clash with ours.
/// </summary>
public sealed class ModuleInitializer : IModuleAssemblyInitializer, IModuleAssemblyCleanup
{
    private const string EngineAssemblyName = "CkLlm.Engine";

    /// <summary>Start-CkServer's assembly: published beside the engine in deps/ and loaded into the same context, so it
    /// serves the very models the session loaded.</summary>
    private const string ServerAssemblyName = "CkLlm.Server";

    internal static string ModuleDirectory { get; } =
        Path.GetDirectoryName(typeof(ModuleInitializer).Assembly.Location)!;

    private static readonly Lazy<EngineLoadContext> EngineContext =
        new(() => new EngineLoadContext(Path.Combine(ModuleDirectory, "deps")));

    public void OnImport()
    {
        AssemblyLoadContext.Default.Resolving -= ResolveEngine;
        AssemblyLoadContext.Default.Resolving += ResolveEngine;
        SessionHost.ModuleImported();
    }

    /// <summary>Remove-Module (or Import-Module -Force) in one runspace: the session is freed only when no other
    /// runspace still has the module imported.</summary>
    public void OnRemove(PSModuleInfo psModuleInfo)
    {
        SessionHost.ModuleRemoved();
    }

    private static Assembly? ResolveEngine(AssemblyLoadContext defaultContext, AssemblyName name) =>
        name.Name is EngineAssemblyName or ServerAssemblyName ? EngineContext.Value.LoadFromAssemblyName(name) : null;

    private sealed class EngineLoadContext : AssemblyLoadContext
    {
        private readonly AssemblyDependencyResolver _resolver;
        private readonly AssemblyDependencyResolver? _serverResolver;
        private readonly string? _aspNetCoreDirectory = FindAspNetCoreDirectory();

        public EngineLoadContext(string depsDirectory) : base("CkLlm.Engine", isCollectible: false)
        {
            var enginePath = Path.Combine(depsDirectory, EngineAssemblyName + ".dll");
            if (!File.Exists(enginePath))
            {
                throw new FileNotFoundException(
                    $"The CkLlm engine is missing from '{depsDirectory}'. Rebuild the module with ./build.ps1.", enginePath);
            }
            _resolver = new AssemblyDependencyResolver(enginePath);
            var serverPath = Path.Combine(depsDirectory, ServerAssemblyName + ".dll");
            if (File.Exists(serverPath)) _serverResolver = new AssemblyDependencyResolver(serverPath);
        }

        protected override Assembly? Load(AssemblyName assemblyName)
        {
            // Anything the engine's or the server's deps.json names comes from deps/. ASP.NET Core (the server's
            // shared framework, which pwsh itself does not load) comes from its folder beside the running runtime;
            // the rest (Microsoft.NETCore.App) falls back to Default.
            var path = _resolver.ResolveAssemblyToPath(assemblyName) ?? _serverResolver?.ResolveAssemblyToPath(assemblyName);
            if (path is null && _aspNetCoreDirectory is not null && assemblyName.Name is { } name)
            {
                var candidate = Path.Combine(_aspNetCoreDirectory, name + ".dll");
                if (File.Exists(candidate)) path = candidate;
            }
            return path is null ? null : LoadFromAssemblyPath(path);
        }

        /// <summary>The Microsoft.AspNetCore.App folder of the runtime pwsh runs on (same version, else the newest of the
        /// same major version); null when the ASP.NET Core runtime is not installed.</summary>
        private static string? FindAspNetCoreDirectory()
        {
            var runtimeDirectory = Path.GetDirectoryName(typeof(object).Assembly.Location);
            var sharedDirectory = runtimeDirectory is null ? null : Path.GetDirectoryName(Path.GetDirectoryName(runtimeDirectory));
            var aspNetCore = sharedDirectory is null ? null : Path.Combine(sharedDirectory, "Microsoft.AspNetCore.App");
            if (aspNetCore is null || !Directory.Exists(aspNetCore)) return null;
            var exact = Path.Combine(aspNetCore, Path.GetFileName(runtimeDirectory!));
            if (Directory.Exists(exact)) return exact;
            var major = Environment.Version.Major.ToString(System.Globalization.CultureInfo.InvariantCulture) + ".";
            return Directory.GetDirectories(aspNetCore)
                .Where(d => Path.GetFileName(d).StartsWith(major, StringComparison.Ordinal) && Version.TryParse(Path.GetFileName(d).Split('-')[0], out _))
                .OrderByDescending(d => Version.Parse(Path.GetFileName(d).Split('-')[0]))
                .FirstOrDefault();
        }

        protected override IntPtr LoadUnmanagedDll(string unmanagedDllName)
        {
            var path = _resolver.ResolveUnmanagedDllToPath(unmanagedDllName);
            return path is null ? IntPtr.Zero : LoadUnmanagedDllFromPath(path);
        }
    }
}
