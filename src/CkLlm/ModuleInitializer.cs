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
        name.Name == EngineAssemblyName ? EngineContext.Value.LoadFromAssemblyName(name) : null;

    private sealed class EngineLoadContext : AssemblyLoadContext
    {
        private readonly AssemblyDependencyResolver _resolver;

        public EngineLoadContext(string depsDirectory) : base("CkLlm.Engine", isCollectible: false)
        {
            var enginePath = Path.Combine(depsDirectory, EngineAssemblyName + ".dll");
            if (!File.Exists(enginePath))
            {
                throw new FileNotFoundException(
                    $"The CkLlm engine is missing from '{depsDirectory}'. Rebuild the module with ./build.ps1.", enginePath);
            }
            _resolver = new AssemblyDependencyResolver(enginePath);
        }

        protected override Assembly? Load(AssemblyName assemblyName)
        {
            // Anything deps.json names comes from deps/; the rest (the shared framework) falls back to Default.
            var path = _resolver.ResolveAssemblyToPath(assemblyName);
            return path is null ? null : LoadFromAssemblyPath(path);
        }

        protected override IntPtr LoadUnmanagedDll(string unmanagedDllName)
        {
            var path = _resolver.ResolveUnmanagedDllToPath(unmanagedDllName);
            return path is null ? IntPtr.Zero : LoadUnmanagedDllFromPath(path);
        }
    }
}
