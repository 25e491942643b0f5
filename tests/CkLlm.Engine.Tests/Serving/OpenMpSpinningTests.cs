using System.Runtime.InteropServices;
using CkLlm.Engine.Model;

namespace CkLlm.Engine.Tests.Serving;

/// <summary>ggml's OpenMP threads are told to stop spinning early (libgomp reads GOMP_SPINCOUNT once, when llama.cpp
/// loads, which is why NativeBackend does this before loading it), unless the user chose a policy themselves. The bound is
/// called directly: in this test process another test may have loaded llama.cpp first.</summary>
public partial class OpenMpSpinningTests
{
    [Fact]
    public void The_native_environment_bounds_libgomp_spinning_unless_the_user_set_it()
    {
        var given = Environment.GetEnvironmentVariable("GOMP_SPINCOUNT");
        var policy = Environment.GetEnvironmentVariable("OMP_WAIT_POLICY");
        NativeBackend.BoundOpenMpSpinning();
        var native = Marshal.PtrToStringUTF8(GetEnv("GOMP_SPINCOUNT"));
        if (given is not null || policy is not null) Assert.Equal(given, native);
        else Assert.Equal(NativeBackend.OpenMpSpinCount, native);
    }

    [LibraryImport("libc", EntryPoint = "getenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr GetEnv(string name);
}
