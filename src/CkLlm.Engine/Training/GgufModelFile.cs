using System.Runtime.InteropServices;
using CkLlm.Engine.Model.Gguf;
using CkLlm.Engine.Training.Native;

namespace CkLlm.Engine.Training;

/// <summary>
/// A GGUF file opened with ggml's own reader: metadata from the gguf context, tensors created in a ggml context by
/// <c>gguf_init_from_file</c> and their bytes copied into a CPU backend buffer. Quantized tensors stay quantized.
/// </summary>
internal sealed unsafe class GgufModelFile : IDisposable
{
    private IntPtr _gguf;
    private IntPtr _context;
    private IntPtr _buffer;

    public string Path { get; }
    public IntPtr Gguf => _gguf;
    public IntPtr Context => _context;

    private GgufModelFile(string path) => Path = path;

    /// <summary>Opens <paramref name="path"/>; with <paramref name="backend"/> the tensor data is loaded too.</summary>
    public static GgufModelFile Open(string path, IntPtr backend)
    {
        path = System.IO.Path.GetFullPath(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"Model file '{path}' does not exist.", path);
        using (var probe = File.OpenRead(path))
        {
            var header = new byte[8];
            if (probe.Length < 24 || probe.Read(header) != 8 || BitConverter.ToUInt32(header, 0) != GgufWriter.Magic)
                throw new GgufFormatException(path, "it does not start with the GGUF magic.");
        }
        Ggml.Initialize();
        var file = new GgufModelFile(path);
        try
        {
            IntPtr context = IntPtr.Zero;
            file._gguf = Ggml.gguf_init_from_file(path, new GgufInitParams { NoAlloc = true, Context = (IntPtr)(&context) });
            if (file._gguf == IntPtr.Zero || context == IntPtr.Zero)
                throw new GgufFormatException(path, "ggml's GGUF reader rejected it (truncated or malformed header, metadata or tensor table).");
            file._context = context;
            if (backend != IntPtr.Zero) file.LoadData(backend);
            return file;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private void LoadData(IntPtr backend)
    {
        _buffer = Ggml.ggml_backend_alloc_ctx_tensors(_context, backend);
        if (_buffer == IntPtr.Zero) throw new OutOfMemoryException($"Cannot allocate the tensors of '{Path}'.");
        HugePages.Advise(_buffer);
        long dataOffset = (long)Ggml.gguf_get_data_offset(_gguf);
        long fileLength = new FileInfo(Path).Length;
        using var stream = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        byte[] chunk = new byte[1 << 22];
        long n = Ggml.gguf_get_n_tensors(_gguf);
        for (long i = 0; i < n; i++)
        {
            var name = Marshal.PtrToStringUTF8(Ggml.gguf_get_tensor_name(_gguf, i))!;
            var tensor = Ggml.ggml_get_tensor(_context, name);
            long size = (long)Ggml.ggml_nbytes(tensor);
            long offset = dataOffset + (long)Ggml.gguf_get_tensor_offset(_gguf, i);
            if (offset + size > fileLength) throw new GgufFormatException(Path, $"tensor '{name}' extends past the end of the file.");
            stream.Position = offset;
            for (long done = 0; done < size;)
            {
                int count = (int)Math.Min(chunk.Length, size - done);
                stream.ReadExactly(chunk, 0, count);
                fixed (byte* p = chunk) Ggml.ggml_backend_tensor_set(tensor, p, (nuint)done, (nuint)count);
                done += count;
            }
        }
    }

    public long BufferSize => _buffer == IntPtr.Zero ? 0 : (long)Ggml.ggml_backend_buffer_get_size(_buffer);

    public IntPtr Tensor(string name) => Ggml.ggml_get_tensor(_context, name);

    public IntPtr RequireTensor(string name)
    {
        var t = Tensor(name);
        return t != IntPtr.Zero ? t : throw new GgufFormatException(Path, $"tensor '{name}' is missing.");
    }

    public IEnumerable<IntPtr> Tensors()
    {
        for (var t = Ggml.ggml_get_first_tensor(_context); t != IntPtr.Zero; t = Ggml.ggml_get_next_tensor(_context, t))
            yield return t;
    }

    // gguf_get_val_* abort on a type mismatch, so every getter checks the stored type first.
    private long Key(string key) => Ggml.gguf_find_key(_gguf, key);

    public string? GetString(string key)
    {
        long id = Key(key);
        if (id < 0) return null;
        if (Ggml.gguf_get_kv_type(_gguf, id) != (int)GgufValueType.String)
            throw new GgufFormatException(Path, $"metadata '{key}' is not a string.");
        return Marshal.PtrToStringUTF8(Ggml.gguf_get_val_str(_gguf, id));
    }

    public long? GetInteger(string key)
    {
        long id = Key(key);
        if (id < 0) return null;
        var data = Ggml.gguf_get_val_data(_gguf, id);
        return (GgufValueType)Ggml.gguf_get_kv_type(_gguf, id) switch
        {
            GgufValueType.UInt8 => *(byte*)data, GgufValueType.Int8 => *(sbyte*)data,
            GgufValueType.UInt16 => *(ushort*)data, GgufValueType.Int16 => *(short*)data,
            GgufValueType.UInt32 => *(uint*)data, GgufValueType.Int32 => *(int*)data,
            GgufValueType.UInt64 => (long)*(ulong*)data, GgufValueType.Int64 => *(long*)data,
            GgufValueType.Array => throw new GgufFormatException(Path, $"metadata '{key}' is an array (per-layer values are not supported)."),
            _ => throw new GgufFormatException(Path, $"metadata '{key}' is not an integer."),
        };
    }

    public double? GetReal(string key)
    {
        long id = Key(key);
        if (id < 0) return null;
        var data = Ggml.gguf_get_val_data(_gguf, id);
        return (GgufValueType)Ggml.gguf_get_kv_type(_gguf, id) switch
        {
            GgufValueType.Float32 => *(float*)data,
            GgufValueType.Float64 => *(double*)data,
            _ => GetInteger(key),
        };
    }

    public void Dispose()
    {
        if (_buffer != IntPtr.Zero) { Ggml.ggml_backend_buffer_free(_buffer); _buffer = IntPtr.Zero; }
        if (_context != IntPtr.Zero) { Ggml.ggml_free(_context); _context = IntPtr.Zero; }
        if (_gguf != IntPtr.Zero) { Ggml.gguf_free(_gguf); _gguf = IntPtr.Zero; }
    }
}
