using CkLlm.Engine.Training;

namespace CkLlm.Engine.Tests.Training;

/// <summary>The blocked transpose behind the transposed weight copies, against the definition, on shapes that leave
/// edges beside its 8 x 8 blocks.</summary>
public unsafe class TransposeTests
{
    [Theory]
    [InlineData(8, 8)]
    [InlineData(13, 21)]
    [InlineData(96, 700)]
    [InlineData(130, 67)]
    public void RowStretchesTransposeLikeTheDefinition(int columns, int rows)
    {
        var source = Enumerable.Range(0, columns * rows).Select(i => (float)i).ToArray();
        var target = new float[source.Length];
        var halves = source.Select(x => (ushort)x).ToArray();
        var halfTarget = new ushort[halves.Length];
        fixed (float* s = source, t = target)
        fixed (ushort* hs = halves, ht = halfTarget)
        {
            // In stretches, as the refresh splits the work (the last one shorter).
            for (int start = 0; start < rows; start += 24)
            {
                int end = Math.Min(start + 24, rows);
                TransposedWeights.TransposeRows(s, t, columns, rows, start, end);
                TransposedWeights.TransposeRows(hs, ht, columns, rows, start, end);
            }
        }
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
            {
                Assert.Equal(source[r * columns + c], target[c * rows + r]);
                Assert.Equal(halves[r * columns + c], halfTarget[c * rows + r]);
            }
    }
}
