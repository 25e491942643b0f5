using CkLlm.Engine.Inference;

namespace CkLlm.Engine.Tests.Inference;

public class WorkerThreadTests
{
    private sealed class Source(int count, bool fail = false)
    {
        public bool Disposed { get; private set; }
        public int Produced { get; private set; }
        public int? ProducerThread { get; private set; }

        public IEnumerable<int> Items()
        {
            try
            {
                ProducerThread = Environment.CurrentManagedThreadId;
                for (var i = 0; i < count; i++)
                {
                    Produced++;
                    yield return i;
                }
                if (fail) throw new InvalidOperationException("producer failed");
            }
            finally { Disposed = true; }
        }
    }

    [Fact]
    public void ItemsArriveInOrderFromAnotherThread()
    {
        var source = new Source(5);
        Assert.Equal([0, 1, 2, 3, 4], WorkerThread.Enumerate(source.Items(), "test").ToArray());
        Assert.NotEqual(Environment.CurrentManagedThreadId, source.ProducerThread);
        Assert.True(source.Disposed);
    }

    [Fact]
    public void ProducerWaitsForTheConsumerAndStopsWhenAbandoned()
    {
        var source = new Source(100);
        foreach (var item in WorkerThread.Enumerate(source.Items(), "test"))
        {
            if (item == 2) break;
        }
        // Rendezvous: nothing is produced beyond the item the consumer stopped at.
        Assert.Equal(3, source.Produced);
        Assert.True(source.Disposed);
    }

    [Fact]
    public void ProducerExceptionsReachTheConsumer()
    {
        var source = new Source(2, fail: true);
        var error = Assert.Throws<InvalidOperationException>(() => WorkerThread.Enumerate(source.Items(), "test").ToArray());
        Assert.Equal("producer failed", error.Message);
        Assert.True(source.Disposed);
    }
}
